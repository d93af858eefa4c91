"""Engines, sessions and migrations. SQLite by default, PostgreSQL by URL (see settings).

Any engine handed out by `get_engine` has had the Alembic migrations applied: the first use per
process and URL runs `upgrade()`, later uses only look up a cache.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from sceneflow.errors import ConfigError
from sceneflow.settings import get_settings

__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
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

_lock = threading.RLock()
_engines: dict[str, Engine] = {}
_migrated: set[str] = set()


def database_url() -> str:
    return get_settings().sqlalchemy_url()


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
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


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
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
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
    engine = _raw_engine(url)
    try:
        conn = engine.connect()
    except OperationalError as e:
        # The driver's message names host and port, never the password; it spans lines.
        reason = " ".join(str(e.orig).split()).rstrip(".")
        raise ConfigError(
            f"Cannot open the database {public_url(url)}: {reason}. Check DATABASE_URL "
            "(or DB_HOST, DB_PORT, DB_USERNAME, DB_PASSWORD, DB_NAME)."
        ) from e
    with conn, conn.begin():
        # SQLite serialises through BEGIN IMMEDIATE; PostgreSQL through an advisory lock held
        # until commit, so a second process waits and then finds the schema at head.
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        command.upgrade(alembic_config(conn), "head")
    with _lock:
        _migrated.add(url)
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
