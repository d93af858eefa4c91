"""Alembic migrations: they create the tables, match the models, and tolerate concurrency."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel

from sceneflow import db, store
from sceneflow.errors import ConfigError

TABLES = {"user_provider_config", "generation_job", "generation_attempt", "alembic_version"}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _engines(database_url: str) -> Iterator[str]:
    yield database_url
    db.dispose_engines()


HEAD = ScriptDirectory.from_config(db.alembic_config()).get_current_head()


def tables(url: str) -> set[str]:
    return set(sa.inspect(db._raw_engine(url)).get_table_names())


def revision(url: str) -> str | None:
    with db._raw_engine(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def test_upgrade_creates_the_tables_and_a_second_run_is_a_no_op(database_url: str) -> None:
    assert tables(database_url) == set()
    db.upgrade()
    assert tables(database_url) == TABLES and revision(database_url) == HEAD
    with db.session_scope() as s:
        s.add(
            store.GenerationJob(
                idempotency_key="k", user_id="u", provider="local", request_json="{}"
            )
        )
    db.upgrade()
    assert tables(database_url) == TABLES and revision(database_url) == HEAD
    with db.session_scope() as s:
        assert store.find_job(session=s, job_id_or_provider_job_id="nothing") is None
        assert len(list(s.exec(sa.select(store.GenerationJob.id)))) == 1  # type: ignore[call-overload]


def test_the_migrations_match_the_models(database_url: str) -> None:
    db.upgrade()
    with db._raw_engine(database_url).connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(ctx, SQLModel.metadata) == []


def test_downgrade_to_base_and_back(database_url: str) -> None:
    db.upgrade()
    with db._raw_engine(database_url).begin() as conn:
        command.downgrade(db.alembic_config(conn), "base")
    assert tables(database_url) == {"alembic_version"}
    db.dispose_engines()
    db.upgrade()
    assert tables(database_url) == TABLES


def test_data_survives_an_upgrade_from_the_first_revision(database_url: str) -> None:
    with db._raw_engine(database_url).begin() as conn:
        command.upgrade(db.alembic_config(conn), "0001")
        conn.execute(
            sa.text(
                "INSERT INTO generation_job (id, idempotency_key, user_id, provider, request_json,"
                " status, progress, attempts, created_at, updated_at) VALUES ('j1', 'k', 'u',"
                " 'local', '{}', 'QUEUED', 0, 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
    db.upgrade()
    assert revision(database_url) == HEAD
    with db.session_scope() as s:
        job = store.get_job(session=s, job_id="j1")
        assert job is not None and job.idempotency_key == "k"
        store.record_attempt(session=s, job_id="j1", operation="status", outcome="ok")


def test_first_use_migrates_once_per_process(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[str] = []
    real = command.upgrade

    def counting(config: Config, target: str) -> None:
        runs.append(target)
        real(config, target)

    monkeypatch.setattr(command, "upgrade", counting)
    with db.session_scope() as s:
        assert store.list_all_configs(session=s) == []
    with db.session_scope() as s:
        assert store.get_job(session=s, job_id="x") is None
    assert runs == ["head"] and db.get_engine() is db.get_engine(database_url)


def test_two_processes_upgrading_a_fresh_database_at_once(database_url: str) -> None:
    code = "from sceneflow import db; db.upgrade(); print('ok')"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert out.strip() == "ok"
    assert tables(database_url) == TABLES and revision(database_url) == HEAD


def test_opening_a_file_another_connection_is_reading_waits_to_switch_it_to_wal(
    database_url: str,
) -> None:
    # The switch to WAL needs an exclusive lock and SQLite does not wait for it by itself; CI
    # once saw the second of two processes upgrading a new file fail with "database is locked".
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite journal mode only")
    file = Path(database_url.removeprefix("sqlite:///"))
    file.parent.mkdir(parents=True, exist_ok=True)
    reader = sqlite3.connect(file, isolation_level=None, check_same_thread=False)
    reader.execute("CREATE TABLE held (x)")
    reader.execute("BEGIN")
    reader.execute("SELECT * FROM held").fetchall()  # a shared lock, in rollback mode
    release = threading.Timer(0.5, reader.execute, args=("COMMIT",))
    release.start()
    try:
        db.upgrade()
    finally:
        release.join()
        reader.close()
    assert revision(database_url) == HEAD
    with db.get_engine().connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(database_url: str) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite pragmas only")
    with db.get_engine().connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_an_unreachable_database_is_a_config_error_without_the_password() -> None:
    url = "postgresql+psycopg://sf:hunter2secret@127.0.0.1:1/sceneflow"
    with pytest.raises(ConfigError) as info:
        db.upgrade(url)
    message = str(info.value)
    assert message.startswith("Cannot open the database postgresql+psycopg://sf:***@127.0.0.1:1/")
    assert "Check DATABASE_URL (or DB_HOST, DB_PORT, DB_USERNAME, DB_PASSWORD, DB_NAME)." in message
    assert "hunter2secret" not in message
