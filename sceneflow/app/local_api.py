"""The temporary Prefect API a CLI command runs on when no Prefect server is configured.

Prefect starts its own temporary server when `PREFECT_API_URL` is unset, but as a child in the
CLI's process group: a terminal's Ctrl-C reaches it first and kills it while the flow still
needs it (the CLI then hangs), and a `kill -9` of the CLI leaves it running (design.md §6).
So the CLI starts `prefect server start` itself, with the settings of Prefect's temporary
server (SQLite under PREFECT_HOME, ephemeral services, no UI, analytics off, a free port on
127.0.0.1), in a session of its own, and stops it when the command ends, however it ends.

Each running server has a pid file, `<SCENEFLOW_HOME>/local-api/<cli pid>.json`, that names the
server (pid, port, start time) and the command that owns it. A file whose owner is gone but
whose server still runs is an orphan (the owner was killed): the next start stops it, once it
has checked in /proc that the pid is still that server, and never a process that reused it.
With `PREFECT_API_URL` set (as `make serve` sets it) none of this happens.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from prefect.context import refresh_global_settings_context
from prefect.events.worker import EventsWorker
from prefect.settings import get_current_settings

from sceneflow.errors import SceneFlowError
from sceneflow.settings import get_settings

__all__ = ["LocalApi", "configured_api_url", "pid_files", "running", "stop_orphans"]

GRACE_SECONDS = 5.0
# Events and logs still queued when the command ends go to the API before it stops; past this
# they are dropped rather than keeping the user waiting.
DRAIN_SECONDS = 10.0


@dataclass(frozen=True)
class LocalApi:
    """One temporary Prefect API server and the command that owns it."""

    pid: int
    port: int
    started: int  # the server's start time, in clock ticks since boot (/proc/<pid>/stat)
    started_at: str  # the same, for people
    owner: int
    owner_started: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"


def configured_api_url() -> str | None:
    """The Prefect API this process would use: PREFECT_API_URL, a profile or a test harness."""
    return get_current_settings().api.url


def _folder() -> Path:
    return get_settings().home / "local-api"


def pid_files() -> list[Path]:
    """The pid files of the temporary servers started from this data directory."""
    folder = _folder()
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def _start_ticks(pid: int) -> int | None:
    """The process's start time (clock ticks since boot), or None if it is not running."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count from the last ")".
    return int(stat.rsplit(")", 1)[1].split()[19])


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _is_our_server(api: LocalApi) -> bool:
    """Still the server the pid file names: the same start time and a `prefect server start`
    on its port. A pid that another process reused fails one or the other."""
    if _start_ticks(api.pid) != api.started:
        return False
    args = _cmdline(api.pid)
    server = "prefect" in " ".join(args[:3]) and "server" in args and "start" in args
    return server and "--port" in args and str(api.port) in args


def _signal(api: LocalApi, sig: signal.Signals) -> None:
    # The server leads its own process group (start_new_session): the group takes any
    # children with it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(api.pid) == api.pid:
            os.killpg(api.pid, sig)
        else:
            os.kill(api.pid, sig)


def _wait_gone(
    api: LocalApi,
    popen: subprocess.Popen[bytes] | None,
    seconds: float,
    hurry: threading.Event | None = None,
) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end and not (hurry is not None and hurry.is_set()):
        if popen is not None:
            if popen.poll() is not None:
                return True
        elif _start_ticks(api.pid) != api.started:
            return True
        time.sleep(0.05)
    return False


def _terminate(
    api: LocalApi,
    popen: subprocess.Popen[bytes] | None = None,
    grace: float = GRACE_SECONDS,
    hurry: threading.Event | None = None,
) -> None:
    """SIGTERM, then SIGKILL after the grace period (or as soon as `hurry` is set)."""
    _signal(api, signal.SIGTERM)
    try:
        if _wait_gone(api, popen, grace, hurry):
            return
    except KeyboardInterrupt:
        pass  # a second Ctrl-C while it shuts down: stop waiting
    _signal(api, signal.SIGKILL)
    _wait_gone(api, popen, 2.0)


def kill_now(api: LocalApi) -> None:
    """SIGKILL the server and forget it, for a command that must exit at once."""
    _signal(api, signal.SIGKILL)
    with contextlib.suppress(OSError):
        (_folder() / f"{api.owner}.json").unlink()


def _read(path: Path) -> LocalApi | None:
    try:
        return LocalApi(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def stop_orphans() -> list[str]:
    """Stop every server whose owning command is gone; returns one line for each stopped."""
    lines = []
    for path in pid_files():
        api = _read(path)
        if api is not None and _start_ticks(api.owner) == api.owner_started:
            continue  # another command that is still running owns it
        if api is not None and _is_our_server(api):
            _terminate(api)
            lines.append(
                f"Stopped a Prefect API left running by an earlier SceneFlow command "
                f"(pid {api.pid}, port {api.port}, started {api.started_at})."
            )
        with contextlib.suppress(OSError):
            path.unlink()
    return lines


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _launch(port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        **get_current_settings().to_environment_variables(exclude_unset=True),
        # What Prefect's own temporary server runs with (SubprocessASGIServer): the services
        # of an ephemeral server, no UI.
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
    env.pop("PREFECT_API_URL", None)
    args = [
        sys.executable, "-m", "prefect", "server", "start",
        "--host", "127.0.0.1", "--port", str(port), "--analytics-off", "--no-ui",
    ]  # fmt: skip
    with log.open("ab") as out:
        return subprocess.Popen(
            args,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            # Its own session: a terminal's Ctrl-C goes to the CLI's process group, not here.
            start_new_session=True,
        )


def _last_line(log: Path) -> str:
    lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
    return lines[-1] if lines else ""


def _failed(log: Path, why: str) -> SceneFlowError:
    tail = _last_line(log)
    return SceneFlowError(
        f"Prefect's local API {why} (log: {log}){': ' + tail if tail else ''}; "
        "or run `make serve` and set PREFECT_API_URL to use a running Prefect server"
    )


def start(timeout: float | None = None) -> tuple[LocalApi, subprocess.Popen[bytes]]:
    """Start a server, write its pid file and wait until it answers /health."""
    folder = _folder()
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "server.log"
    limit = timeout or get_current_settings().server.ephemeral.startup_timeout_seconds
    me = os.getpid()
    for _attempt in range(3):
        port = _free_port()
        popen = _launch(port, log)
        api = LocalApi(
            pid=popen.pid,
            port=port,
            started=_start_ticks(popen.pid) or 0,
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            owner=me,
            owner_started=_start_ticks(me) or 0,
        )
        (folder / f"{me}.json").write_text(json.dumps(asdict(api)))
        try:
            if _healthy(api, popen, limit):
                return api, popen
        except BaseException:
            stop(api, popen)
            raise
        exited = popen.poll()
        stop(api, popen)
        if exited is None or "in use" not in _last_line(log):  # a port taken meanwhile: retry
            break
    why = f"exited ({exited})" if exited is not None else f"did not answer within {limit} s"
    raise _failed(log, why)


def _healthy(api: LocalApi, popen: subprocess.Popen[bytes], limit: float) -> bool:
    end = time.monotonic() + limit
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < end and popen.poll() is None:
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"{api.url}/health").status_code == 200:
                    return True
            time.sleep(0.1)
    return False


def stop(
    api: LocalApi,
    popen: subprocess.Popen[bytes] | None = None,
    hurry: threading.Event | None = None,
) -> None:
    """Stop the server (SIGTERM, then SIGKILL after a grace period or once `hurry` is set);
    remove its pid file."""
    _terminate(api, popen, hurry=hurry)
    with contextlib.suppress(OSError):
        (_folder() / f"{api.owner}.json").unlink()


def _use(url: str | None) -> None:
    if url is None:
        os.environ.pop("PREFECT_API_URL", None)
    else:
        os.environ["PREFECT_API_URL"] = url
    refresh_global_settings_context()


def _drain_prefect(seconds: float) -> None:
    """Send the events and logs Prefect still holds while the API can take them; otherwise
    Prefect retries them against a stopped server at exit, for minutes."""
    EventsWorker.drain_all(timeout=seconds)  # every queue service: events and API logs


@contextlib.contextmanager
def running(*, say: Callable[[str], None] = print) -> Iterator[LocalApi | None]:
    """Run the block against a temporary local Prefect API, unless one is configured.

    Orphans of earlier commands are stopped first (one line each through `say`). The server
    is stopped and its pid file removed when the block ends, however it ends; the block sees
    PREFECT_API_URL set to it, in this process only."""
    if configured_api_url():
        yield None
        return
    for line in stop_orphans():
        say(line)
    api, popen = start()
    try:
        _use(api.url)
        try:
            yield api
        finally:
            with contextlib.suppress(Exception):
                _drain_prefect(DRAIN_SECONDS)
    finally:
        with _ctrl_c_held() as pressed:
            stop(api, popen, hurry=pressed)
            _use(None)


@contextlib.contextmanager
def _ctrl_c_held() -> Iterator[threading.Event]:
    """While the block runs, a Ctrl-C only sets the event it yields, and is raised as
    KeyboardInterrupt once the block is done.

    A Ctrl-C that lands in this cleanup before the server is signalled (a second one just as
    a command ends) would leave the server running after the command exited, as
    tests/app/cli/test_interrupt.py once saw. Held, it makes the stop skip its grace period."""
    pressed = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield pressed  # only the main thread receives signals
        return
    previous = signal.signal(signal.SIGINT, lambda *_: pressed.set())
    try:
        yield pressed
    finally:
        signal.signal(signal.SIGINT, previous)
    if pressed.is_set():
        raise KeyboardInterrupt
