"""`sceneflow doctor` (one line per check, exit 1 on any failure) and the check-credentials flow
that re-tests every stored credential (against the Runway emulator)."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings
from typer.testing import CliRunner, Result

from flows.maintenance import check_credentials_flow
from sceneflow import db, store
from sceneflow.app import cli
from sceneflow.db import session_scope
from sceneflow.settings import get_settings
from tests.support.emulators._base import free_port, serve
from tests.support.emulators.runway import API_KEY, RunwayEmulator

runner = CliRunner()


def doctor(api_url: str | None, monkeypatch: pytest.MonkeyPatch, **env: str) -> Result:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    db.dispose_engines()
    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        return runner.invoke(cli.app, ["doctor"])


def store_creds(user_id: str, provider: str, key: str, valid: bool | None) -> None:
    with session_scope() as session:
        store.put_credentials(
            session=session, user_id=user_id, provider=provider, credentials={"api_key": key}
        )
        if valid is not None:
            store.set_validity(session=session, user_id=user_id, provider=provider, is_valid=valid)


def test_doctor_passes_on_a_healthy_setup_and_migrates_the_database(
    sceneflow_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_creds("ann", "runway", "k-ann", valid=True)
    store_creds("bob", "luma", "k-bob", valid=None)
    result = doctor(None, monkeypatch)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("ok   encryption key: ENCRYPTION_KEY is well formed (key id ")
    assert lines[1].startswith("ok   database: sqlite:///") and "at the latest schema" in lines[1]
    assert lines[2].startswith("ok   prefect api: local (PREFECT_API_URL is not set)")
    assert lines[3].startswith("ok   credentials ann/runway: valid (last checked ")
    assert (
        lines[4] == "warn credentials bob/luma: never tested; run `sceneflow creds test bob luma`"
    )
    assert lines[5] == "All checks passed."
    assert "k-ann" not in result.output and "k-bob" not in result.output


def test_doctor_names_each_failure_and_exits_1(
    sceneflow_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_creds("ann", "runway", "k-ann", valid=False)
    dead = f"http://127.0.0.1:{free_port()}/api"
    result = doctor(dead, monkeypatch)
    assert result.exit_code == 1
    assert f"FAIL prefect api: {dead} is not reachable (" in result.stdout
    assert (
        "FAIL credentials ann/runway: rejected by the provider at the last check; store working "
        "ones with `sceneflow creds set ann runway`" in result.stdout
    )
    assert result.stdout.rstrip().endswith("2 check(s) failed.")

    broken = doctor(None, monkeypatch, ENCRYPTION_KEY="not-base64!")
    assert broken.exit_code == 1
    assert "FAIL encryption key: ENCRYPTION_KEY is not valid base64" in broken.stdout
    assert "FAIL credentials: not checked: fix the key and database first" in broken.stdout


def test_doctor_reports_credentials_the_current_key_cannot_open(
    sceneflow_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_creds("ann", "runway", "k-ann", valid=True)
    other = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI="  # 32 bytes of "B"
    result = doctor(None, monkeypatch, ENCRYPTION_KEY=other)
    assert result.exit_code == 1
    line = next(x for x in result.stdout.splitlines() if "credentials ann/runway" in x)
    assert line.startswith("FAIL credentials ann/runway: The credentials for provider 'runway'")
    assert "were sealed with key id" in line


@pytest.mark.usefixtures("prefect_harness")
async def test_check_credentials_flow_updates_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    emulator = RunwayEmulator()
    with serve(emulator.app) as url:
        monkeypatch.setenv("SCENEFLOW_BASE_URLS__RUNWAY", url)
        get_settings.cache_clear()
        store_creds("good", "runway", API_KEY, valid=False)
        store_creds("stale", "runway", "key_revoked", valid=True)
        checks = await check_credentials_flow()
    assert sorted((c.user_id, c.verdict) for c in checks) == [
        ("good", "valid"),
        ("stale", "invalid"),
    ]
    with session_scope() as session:
        rows = {r.user_id: r for r in store.list_all_configs(session=session)}
    assert rows["good"].is_valid is True and rows["stale"].is_valid is False
    assert rows["good"].last_validated_at is not None
