"""Engines, sessions and migrations. SQLite by default, PostgreSQL by URL (see settings).

Any engine handed out by `get_engine` has had the Alembic migrations applied: the first use per
process and URL runs `upgrade()`, later uses only look up a cache.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session

from sceneflow.errors import ConfigError
from sceneflow.settings import get_settings

__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "check_writable",
    "database_url",
    "dispose_engines",
    "get_engine",
    "public_url",
    "session_scope",
    "upgrade",
]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any constant works: it only has to be the same in every process that migrates.
_PG_MIGRATION_LOCK = 0x5CE4E_F10
# How long a SQLite connection waits for another's lock before "database is locked".
_BUSY_SECONDS = 30

_lock = threading.RLock()
_engines: dict[str, Engine] = {}
_migrated: set[str] = set()


# The URL of the settings object it was made from. Making it creates SCENEFLOW_HOME and
# resolves the path, which every session did, about ten a job (issue 10).
_url_for: tuple[object, str] | None = None


def database_url() -> str:
    global _url_for
    settings = get_settings()
    if _url_for is not None and _url_for[0] is settings:
        return _url_for[1]
    try:
        url = settings.sqlalchemy_url()
    except OSError as e:
        # Only the default SQLite file touches the disk here: it lives in SCENEFLOW_HOME.
        raise ConfigError(_home_problem(settings.home, e)) from e
    _url_for = (settings, url)
    return url


def _in_home() -> bool:
    """Whether the database is the default SQLite file in SCENEFLOW_HOME."""
    settings = get_settings()
    return settings.database_url is None and not settings.db_host


def _reason(error: BaseException) -> str:
    return " ".join(str(getattr(error, "strerror", None) or error).split()).rstrip(".")


def _home_problem(home: Path, error: OSError) -> str:
    where = home.resolve()
    if where.exists() and not where.is_dir():
        return (
            f"SCENEFLOW_HOME {where} is a file, not a folder: point SCENEFLOW_HOME at a folder "
            "(it is created if missing)."
        )
    if where.is_dir() and not _writable_folder(where):
        return (
            f"SCENEFLOW_HOME {where} is not writable ({_reason(error)}): point SCENEFLOW_HOME "
            "at a folder you can write to."
        )
    return (
        f"SCENEFLOW_HOME {where} cannot be used as the data directory ({_reason(error)}): point "
        "SCENEFLOW_HOME at a folder you can write to."
    )


def _sqlite_file(url: str) -> Path | None:
    sa_url = make_url(url)
    if sa_url.get_backend_name() != "sqlite" or not sa_url.database:
        return None
    if sa_url.database == ":memory:" or sa_url.database.startswith("file::memory:"):
        return None
    return Path(sa_url.database.removeprefix("file:")).resolve()


def _writable_folder(folder: Path) -> bool:
    """Whether a file can be made in `folder`: asks the file system, not the mode bits, which
    root (and ACLs) ignore."""
    probe = folder / f".sceneflow-probe-{uuid.uuid4().hex}"
    try:
        probe.touch(exist_ok=False)
    except OSError:
        return False
    probe.unlink()
    return True


def _sqlite_problem(file: Path, reason: str) -> str:
    """What stops SQLite from using `file`, and which setting moves it."""
    folder = file.parent
    if _in_home():
        home = get_settings().home.resolve()
        fix = "point SCENEFLOW_HOME at a folder you can write to"
        if folder == home and not (folder.is_dir() and _writable_folder(folder)):
            return _home_problem(home, OSError(reason))
    else:
        fix = "set DATABASE_URL to a database you can write to"
    if folder.exists() and not folder.is_dir():
        return f"The SQLite database {file} cannot be created: {folder} is a file; {fix}."
    if file.exists() and not file.is_file():
        return f"The SQLite database {file} is not a file; {fix}."
    if folder.is_dir() and not _writable_folder(folder):
        return (
            f"The folder {folder} of the SQLite database {file} is not writable (SQLite keeps "
            f"its journal beside the file): make the folder writable, or {fix}."
        )
    if "readonly" in reason or (file.is_file() and not os.access(file, os.W_OK)):
        return (
            f"The SQLite database {file} is read-only ({reason}): make the file writable by "
            f"this user, or {fix}."
        )
    return f"Cannot open the SQLite database {file}: {reason}; {fix}."


def public_url(url: str) -> str:
    """The URL with its password masked, fit for printing."""
    return make_url(url).render_as_string(hide_password=True)


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy emit BEGIN itself (see _sqlite_on_begin); pysqlite's own transaction
    # handling would also break SAVEPOINT, which get_or_create relies on.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    # WAL lets readers run beside the one writer; batch tasks write from many threads, so a
    # writer waits up to 30 s for the lock instead of failing with "database is locked".
    _enter_wal(cur)
    cur.execute(f"PRAGMA busy_timeout={_BUSY_SECONDS * 1000}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _enter_wal(cur: sqlite3.Cursor) -> None:
    # Switching a file to WAL takes an exclusive lock without calling SQLite's busy handler, so
    # a process opening the file while another holds any lock on it (two upgrading a new
    # database at once) got "database is locked" at once. WAL is kept in the file: once one
    # connection has switched, the retry finds it set.
    deadline = time.monotonic() + _BUSY_SECONDS
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _sqlite_on_begin(conn: Connection) -> None:
    # A deferred transaction that reads and then writes fails at once with SQLITE_BUSY when
    # another writer committed in between; busy_timeout cannot help it. IMMEDIATE takes the
    # write lock up front, so concurrent writers queue instead.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _new_engine(url: str) -> Engine:
    sa_url = make_url(url)
    if sa_url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if sa_url.database and sa_url.database != ":memory:":
        Path(sa_url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": _BUSY_SECONDS})
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _raw_engine(url: str) -> Engine:
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = _new_engine(url)
        return engine


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for the migrations shipped in the package; no alembic.ini needed."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(url: str | None = None) -> str:
    """Apply pending migrations; safe to run from several processes at once. Returns the URL."""
    url = url or database_url()
    file = _sqlite_file(url)
    try:
        engine = _raw_engine(url)
        conn = engine.connect()
    except OSError as e:  # the SQLite file's folder could not be made
        if file is None:
            raise
        raise ConfigError(_sqlite_problem(file, _reason(e))) from e
    except OperationalError as e:
        # The driver's message names host and port, never the password; it spans lines.
        reason = " ".join(str(e.orig).split()).rstrip(".")
        if file is not None:
            raise ConfigError(_sqlite_problem(file, reason)) from e
        raise ConfigError(
            f"Cannot open the database {public_url(url)}: {reason}. Check DATABASE_URL "
            "(or DB_HOST, DB_PORT, DB_USERNAME, DB_PASSWORD, DB_NAME)."
        ) from e
    try:
        with conn, conn.begin():
            # SQLite serialises through BEGIN IMMEDIATE; PostgreSQL through an advisory lock
            # held until commit, so a second process waits and then finds the schema at head.
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            command.upgrade(alembic_config(conn), "head")
    except OperationalError as e:
        reason = " ".join(str(e.orig).split()).rstrip(".")
        # A read-only SQLite file opens, and then refuses the first write a migration makes.
        if file is None or not ("readonly" in reason or "unable to open" in reason):
            raise
        raise ConfigError(_sqlite_problem(file, reason)) from e
    with _lock:
        _migrated.add(url)
    return url


# Writes that change nothing but need the rights the job ledger needs on its table.
_WRITE_PROBES = (
    "INSERT INTO generation_job SELECT * FROM generation_job WHERE 1 = 0",
    "UPDATE generation_job SET status = status WHERE 1 = 0",
)


def check_writable(url: str | None = None) -> str:
    """Migrate, then prove the job table takes writes, leaving nothing stored. Returns the URL.

    A read-only SQLite file (or a database user without write rights) passes `upgrade` once
    the schema is at head and would only fail at a batch's first job row."""
    url = upgrade(url)
    try:
        with get_engine(url).connect() as conn, conn.begin() as tx:
            for probe in _WRITE_PROBES:
                conn.execute(text(probe))
            tx.rollback()
    except DBAPIError as e:
        reason = " ".join(str(e.orig).split()).rstrip(".")
        file = _sqlite_file(url)
        if file is not None:
            raise ConfigError(_sqlite_problem(file, reason)) from e
        raise ConfigError(
            f"The database {public_url(url)} refuses writes to the job table ({reason}): grant "
            "this database user INSERT and UPDATE, or set DATABASE_URL to a database you can "
            "write to."
        ) from e
    return url


def get_engine(url: str | None = None) -> Engine:
    """The cached engine for `url` (default: from settings), migrated to the latest schema."""
    url = url or database_url()
    with _lock:
        if url not in _migrated:
            upgrade(url)
        return _engines[url]


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session that commits when the block ends and rolls back if it raises."""
    with Session(get_engine(url), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def dispose_engines() -> None:
    """Close every cached engine and forget which URLs were migrated."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _migrated.clear()
