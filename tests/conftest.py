"""Shared fixtures. The environment is set before Prefect is imported anywhere, so every run
keeps its Prefect home, data directory and database inside a temporary folder."""

from __future__ import annotations

import base64
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Test modules must not import this file: pytest loads it as `conftest`, so `tests.conftest`
# would run it a second time and move PREFECT_HOME away from the Prefect already configured.
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="sceneflow-tests-"))
os.environ.update(
    PREFECT_HOME=str(_SESSION_DIR / "prefect"),
    PREFECT_SERVER_ANALYTICS_ENABLED="false",
    DO_NOT_TRACK="1",
    PREFECT_LOGGING_LEVEL="WARNING",
)
for var in ("PREFECT_API_URL", "DATABASE_URL", "DB_HOST", "ENCRYPTION_KEYS_PREVIOUS"):
    os.environ.pop(var, None)

TEST_KEY = base64.b64encode(bytes(range(32))).decode()
POSTGRES_URL = os.environ.get("SCENEFLOW_TEST_POSTGRES_URL")


@pytest.fixture(autouse=True)
def sceneflow_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Each test gets its own data directory and the test encryption key."""
    from sceneflow.settings import get_settings

    home = tmp_path / "sceneflow-home"
    monkeypatch.setenv("SCENEFLOW_HOME", str(home))
    monkeypatch.setenv("ENCRYPTION_KEY", TEST_KEY)
    monkeypatch.delenv("ENCRYPTION_KEYS_PREVIOUS", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


def _postgres_url() -> str:
    if POSTGRES_URL:
        return POSTGRES_URL
    if os.environ.get("CI") == "true":
        pytest.fail(
            "CI=true but SCENEFLOW_TEST_POSTGRES_URL is not set: .ci/run must start PostgreSQL"
        )
    pytest.skip("no PostgreSQL: set SCENEFLOW_TEST_POSTGRES_URL to run the PostgreSQL variant")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(
    request: pytest.FixtureRequest, sceneflow_env: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """Run the test on SQLite and on PostgreSQL (a fresh database per test)."""
    from sceneflow.settings import get_settings

    if request.param == "sqlite":
        url = f"sqlite:///{sceneflow_env / 'sceneflow.db'}"
        monkeypatch.setenv("DATABASE_URL", url)
        get_settings.cache_clear()
        yield url
        return
    import uuid

    import sqlalchemy as sa

    admin_url = _postgres_url()
    name = f"sf_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as e:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"PostgreSQL at SCENEFLOW_TEST_POSTGRES_URL is not reachable: {e}")
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        yield url
    finally:
        from sceneflow import db

        if hasattr(db, "dispose_engines"):
            db.dispose_engines()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One ephemeral Prefect API for the whole session (it takes ~15 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
