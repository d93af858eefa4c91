"""The local Prefect API the CLI runs on without PREFECT_API_URL: started in a session of its
own, stopped at the end, an orphan of a SIGKILLed command stopped by the next start, and never a
process that only happens to have the pid a stale pid file names."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prefect.settings import (
    PREFECT_API_URL,
    PREFECT_SERVER_DATABASE_CONNECTION_URL,
    PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
    temporary_settings,
)
from typer.testing import CliRunner

from sceneflow.app import local_api
from sceneflow.app.cli import app

# A command that starts the local API, says where it is, and waits to be killed.
HOLDER = """
import sys, time
from typer.testing import CliRunner

from sceneflow.app import local_api
from sceneflow.app.cli import app
with local_api.running() as api:
    print(api.pid, api.port, flush=True)
    time.sleep(600)
"""


def _alive(pid: int) -> bool:
    return local_api._start_ticks(pid) is not None


def _gone_within(pid: int, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def no_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No Prefect API configured, as on a machine without `make serve`: the session's test
    harness is set aside. The servers share the session's PREFECT_HOME, so its database is
    migrated once."""
    monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    with temporary_settings(
        updates={PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: 180},
        restore_defaults={PREFECT_API_URL, PREFECT_SERVER_DATABASE_CONNECTION_URL},
    ):
        assert local_api.configured_api_url() is None
        yield


def test_an_orphan_of_a_sigkilled_command_is_stopped_by_the_next_start(
    no_api: None, sceneflow_env: Path
) -> None:
    env = os.environ | {"SCENEFLOW_HOME": str(sceneflow_env)}
    env.pop("PREFECT_API_URL", None)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER],
        env=env,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert holder.stdout is not None
        pid, port = map(int, holder.stdout.readline().split())
        [pid_file] = local_api.pid_files()
        written = json.loads(pid_file.read_text())
        assert (written["pid"], written["port"], written["owner"]) == (pid, port, holder.pid)
        assert written["started"] and written["started_at"]
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()
    # kill -9 of the command leaves its server running: the orphan.
    assert _alive(pid) and httpx.get(f"http://127.0.0.1:{port}/api/health").status_code == 200

    said: list[str] = []
    with local_api.running(say=said.append) as api:
        assert api is not None and api.pid != pid
        assert _gone_within(pid, 1), "the orphan is stopped before the new server starts"
        assert said == [
            f"Stopped a Prefect API left running by an earlier SceneFlow command "
            f"(pid {pid}, port {port}, started {written['started_at']})."
        ]
        assert os.environ["PREFECT_API_URL"] == api.url
        assert httpx.get(f"{api.url}/health").status_code == 200
        # Its own session: a terminal's Ctrl-C to the command's process group misses it.
        assert os.getsid(api.pid) == api.pid != os.getsid(0)
        assert [p.name for p in local_api.pid_files()] == [f"{os.getpid()}.json"]
    assert not _alive(api.pid), "stopped when the block ends"
    assert local_api.pid_files() == []
    assert "PREFECT_API_URL" not in os.environ


def test_a_pid_file_naming_an_unrelated_live_process_is_left_alone(no_api: None) -> None:
    folder = local_api._folder()
    folder.mkdir(parents=True)
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        ticks = local_api._start_ticks(stranger.pid)
        gone_owner = subprocess.Popen(["true"])
        gone_owner.wait()
        # The pid is live and even its start time matches, but it is no prefect server.
        stale = folder / f"{gone_owner.pid}.json"
        stale.write_text(
            json.dumps(
                {
                    "pid": stranger.pid,
                    "port": 4200,
                    "started": ticks,
                    "started_at": "2026-01-01T00:00:00+00:00",
                    "owner": gone_owner.pid,
                    "owner_started": 1,
                }
            )
        )
        # The same process named by a command that still runs is that command's business.
        mine = folder / f"{os.getpid()}.json"
        mine.write_text(
            json.dumps(
                {
                    "pid": stranger.pid,
                    "port": 4201,
                    "started": ticks,
                    "started_at": "2026-01-01T00:00:00+00:00",
                    "owner": os.getpid(),
                    "owner_started": local_api._start_ticks(os.getpid()),
                }
            )
        )
        assert local_api.stop_orphans() == []
        assert stranger.poll() is None
        assert not stale.exists(), "a stale pid file is removed"
        assert mine.exists(), "a live command's pid file stays"
    finally:
        stranger.kill()
        stranger.wait()


def test_with_prefect_api_url_set_no_server_is_started(no_api: None) -> None:
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        with local_api.running() as api:
            assert api is None
            assert local_api.pid_files() == []


@pytest.mark.usefixtures("prefect_harness")
def test_a_command_with_an_api_configured_neither_starts_one_nor_suggests_it(
    tmp_path: Path,
) -> None:
    result = CliRunner().invoke(
        app,
        ["generate", "A paper boat", "--resolution", "160x90", "--duration", "1", "--fps", "12",
         "--output", str(tmp_path / "out")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Prefect's local API" not in result.stdout and "Tip:" not in result.stdout
    assert result.stdout.splitlines()[0] == "Submitting to local…"
    assert local_api.pid_files() == []


def test_a_ctrl_c_during_the_cleanup_still_stops_the_server(
    no_api: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A process in a session of its own that ignores SIGTERM stands in for a server slow to
    # stop; the Ctrl-C comes while the cleanup is under way, before it has been signalled.
    server = subprocess.Popen(
        ["bash", "-c", "trap '' TERM; echo ready; exec sleep 60"],
        start_new_session=True,
        stdout=subprocess.PIPE,
    )
    assert server.stdout is not None and server.stdout.readline() == b"ready\n"
    api = local_api.LocalApi(
        pid=server.pid, port=1, started=0, started_at="", owner=os.getpid(), owner_started=0
    )
    monkeypatch.setattr(local_api, "stop_orphans", lambda: [])
    monkeypatch.setattr(local_api, "start", lambda: (api, server))
    monkeypatch.setattr(local_api, "_drain_prefect", lambda seconds: None)
    real_signal = local_api._signal

    def ctrl_c_then_signal(target: local_api.LocalApi, sig: signal.Signals) -> None:
        if sig == signal.SIGTERM:
            os.kill(os.getpid(), signal.SIGINT)
        real_signal(target, sig)

    monkeypatch.setattr(local_api, "_signal", ctrl_c_then_signal)
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            with local_api.running():
                pass
        server.wait(timeout=5)  # raises TimeoutExpired if the server was left running
        # SIGTERM alone does not stop it: the Ctrl-C cut the grace period short, SIGKILL at once.
        assert server.returncode == -signal.SIGKILL
        assert time.monotonic() - started < local_api.GRACE_SECONDS
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
