"""The `sceneflow` command starts in a launcher (sceneflow/__main__.py) that speaks before the
command tree loads: on a terminal, a status on stderr while Prefect and the flows are imported,
gone before the command prints; piped, nothing. Either way the command's exit code and output are
what the console script printed before the launcher.

Loading is held open by an import gate (a `sitecustomize` that blocks the import of
`sceneflow.app` until the test writes a line to stdin), so what the terminal shows while the
heavy import runs is read without timing anything.
"""

from __future__ import annotations

import fcntl
import functools
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
import tomllib
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from sceneflow import __main__ as launcher

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = Path(sys.executable).parent / "sceneflow"
LOADING = launcher.LOADING.encode()
# The console script as it was before the launcher: it imported the command tree first.
BEFORE = f"""#!{sys.executable}
import sys
from sceneflow.app.cli import app
if __name__ == "__main__":
    sys.exit(app())
"""
GATE = """import os, pathlib, sys

class _Gate:
    def find_spec(self, name, path=None, target=None):
        if name == "sceneflow.app":
            sys.meta_path.remove(self)
            pathlib.Path(os.environ["GATE_REACHED"]).touch()
            sys.stdin.readline()  # the test lets the import go on
        return None

sys.meta_path.insert(0, _Gate())
"""
CSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")
LIMIT = 120  # seconds before a stuck command fails the test; nothing here is timed


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("launcher-home")
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NO_COLOR")}
    env.pop("TTY_COMPATIBLE", None)
    return env | {"SCENEFLOW_HOME": str(home), "COLUMNS": "80", "TERM": "xterm-256color"}


@pytest.fixture(scope="module")
def before(
    tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]
) -> Callable[[tuple[str, ...]], tuple[int, str, str]]:
    """What the console script as it was before the launcher prints, piped, once per command."""
    path = tmp_path_factory.mktemp("before") / "sceneflow"  # the name Click shows in messages
    path.write_text(BEFORE)
    path.chmod(0o755)
    return functools.cache(lambda args: _piped([str(path), *args], env))


def _piped(argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    done = subprocess.run(
        argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=LIMIT, check=False
    )
    return done.returncode, done.stdout, done.stderr


class Terminal:
    """A command on a pseudo-terminal (stdout and stderr both, as a shell runs it), stdin a pipe."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        self.process = subprocess.Popen(
            argv, env=env, cwd=ROOT, stdin=subprocess.PIPE, stdout=slave, stderr=slave
        )
        os.close(slave)
        self.output = b""

    def read_until(self, done: Callable[[bytes], bool]) -> bytes:
        end = time.monotonic() + LIMIT
        while not done(self.output) and time.monotonic() < end:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if not ready:
                continue
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: the command and everything it started have closed the pty
                chunk = b""
            if not chunk:
                break
            self.output += chunk
        return self.output

    def release(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(b"\n")
        self.process.stdin.flush()

    def finish(self) -> int:
        self.read_until(lambda _: False)
        code = self.process.wait(timeout=LIMIT)
        os.close(self.master)
        return code


@pytest.fixture
def gated(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    (tmp_path / "gate").mkdir()
    (tmp_path / "gate" / "sitecustomize.py").write_text(GATE)
    paths = [str(tmp_path / "gate"), *filter(None, [env.get("PYTHONPATH")])]
    return env | {"PYTHONPATH": os.pathsep.join(paths), "GATE_REACHED": str(tmp_path / "held")}


def _held(env: dict[str, str]) -> Callable[[bytes], bool]:
    """Done once the status is on the terminal and the command tree's import is held."""
    return lambda seen: LOADING in seen and Path(env["GATE_REACHED"]).exists()


def test_the_installed_command_is_the_launcher() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    [installed] = entry_points(group="console_scripts", name="sceneflow")
    assert scripts["sceneflow"] == installed.value == "sceneflow.__main__:main"


def test_the_launcher_imports_neither_prefect_nor_the_entry_layer() -> None:
    code = (
        "import sys, sceneflow.__main__\n"
        "print(sorted({'prefect', 'sceneflow.app'} & set(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=LIMIT
    )
    assert (done.returncode, done.stdout.strip()) == (0, "[]"), done.stderr


@pytest.mark.parametrize("how", ["console script", "python -m sceneflow"])
@pytest.mark.parametrize("args", [["providers"], ["providers", "nosuch"]], ids=["ok", "error"])
def test_piped_the_command_prints_what_it_printed_before(
    how: str,
    args: list[str],
    env: dict[str, str],
    before: Callable[[tuple[str, ...]], tuple[int, str, str]],
) -> None:
    command = [str(SCRIPT)] if how == "console script" else [sys.executable, "-m", "sceneflow"]
    got = _piped([*command, *args], env)
    assert got == before(tuple(args))
    code, out, err = got
    assert LOADING.decode() not in out + err
    if args == ["providers"]:
        assert code == 0 and "local" in out and err == ""
    else:  # scripts read the first line of stderr: it is still the error
        assert code == 1 and err.splitlines()[0].startswith("Error: Unknown provider 'nosuch'")


def test_on_a_terminal_the_status_shows_while_loading_and_is_gone_before_the_output(
    gated: dict[str, str],
) -> None:
    terminal = Terminal([str(SCRIPT), "providers"], gated)
    # The import of the command tree is held at the gate: this was printed before it finished.
    assert _held(gated)(terminal.read_until(_held(gated)))
    assert terminal.process.poll() is None
    terminal.release()
    assert terminal.finish() == 0
    output = terminal.output
    after = output[output.rindex(LOADING) + len(LOADING) :]
    table = after.index(b"Provider")
    # Between the last frame and the table: only cursor movement and erasing, no text left over.
    assert b"\x1b[2K" in after[:table]
    assert CSI.sub(b"", after[:table]).strip(b"\r\n") == b""
    assert b"\x1b[?25h" in after[:table]  # the cursor is shown again


@pytest.mark.parametrize("when", ["at the first frame", "while the import is held"])
def test_ctrl_c_while_loading_exits_130_quietly(when: str, gated: dict[str, str]) -> None:
    terminal = Terminal([str(SCRIPT), "batch", "prompts.csv"], gated)
    ready = _held(gated) if when == "while the import is held" else (lambda seen: LOADING in seen)
    assert ready(terminal.read_until(ready))
    terminal.process.send_signal(signal.SIGINT)
    assert terminal.finish() == 130
    after = terminal.output[terminal.output.rindex(LOADING) :]
    assert b"Traceback" not in terminal.output and b"\x1b[?25h" in after


@pytest.mark.parametrize(
    ("args", "extra", "expected"),
    [
        (["--help"], {}, b"Usage: sceneflow"),
        (
            [],
            {
                "_SCENEFLOW_COMPLETE": "complete_bash",
                "_TYPER_COMPLETE_ARGS": "sceneflow prov",
                "COMP_WORDS": "sceneflow prov",
                "COMP_CWORD": "1",
            },
            b"providers",
        ),
    ],
    ids=["help", "completion"],
)
def test_help_and_completion_stay_clean_on_a_terminal(
    args: list[str], extra: dict[str, str], expected: bytes, env: dict[str, str]
) -> None:
    terminal = Terminal([str(SCRIPT), *args], env | extra)
    assert terminal.finish() == 0
    assert expected in CSI.sub(b"", terminal.output) and LOADING not in terminal.output


@pytest.mark.parametrize(
    ("args", "environ", "quiet"),
    [
        (["providers"], {}, False),
        (["batch", "prompts.csv", "--user", "alice"], {}, False),
        ([], {}, True),  # no arguments: the help
        (["--help"], {}, True),
        (["batch", "--help"], {}, True),
        (["--install-completion"], {}, True),
        (["providers"], {"_SCENEFLOW_COMPLETE": "complete_bash"}, True),
        (["generate", "--", "--help"], {}, False),  # an argument, not the option
    ],
)
def test_which_invocations_show_no_status(
    args: list[str], environ: dict[str, str], quiet: bool
) -> None:
    assert launcher._quiet(args, environ) is quiet


def test_the_status_needs_a_real_terminal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    master, slave = pty.openpty()
    with open(slave, "w") as tty, (tmp_path / "log").open("w") as log:
        monkeypatch.delenv("FORCE_COLOR", raising=False)
        monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
        monkeypatch.setenv("TERM", "xterm-256color")
        assert launcher._terminal(tty) is not None
        assert launcher._terminal(log) is None
        assert launcher._terminal(None) is None
        # A CI log forced to colour is still a file: a spinner there is only noise.
        monkeypatch.setenv("FORCE_COLOR", "1")
        assert launcher._terminal(log) is None
        monkeypatch.delenv("FORCE_COLOR")
        monkeypatch.setenv("TERM", "dumb")
        assert launcher._terminal(tty) is None
    os.close(master)
