"""The `sceneflow` command (and `python -m sceneflow`): a launcher that speaks before the CLI loads.

Importing the command tree (`sceneflow.app.cli`) imports Prefect, the flows and every adapter,
which takes about 3 s here before a command can print anything. This module imports only the
standard library and Rich at its top, so on a terminal it shows a transient status on stderr
within a fraction of a second, imports the tree under it, clears it, and hands over to the
command, which then prints exactly what it printed before.

Nothing is shown when stderr is not a terminal (scripts read the first line of stderr for the
one-line error, and CI logs need no progress line), nor for help, version and shell
completion, whose output is read or parsed whole. A Ctrl-C while loading exits 130, as a
command interrupted later does.

It belongs to the entry layer, but lives outside `sceneflow/app/` because importing that
package imports the gateway and with it Prefect. It is the one module that imports the
command tree inside a function (`tests/test_layers.py` names it): its purpose is to print
before that import.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.spinner import Spinner

__all__ = ["LOADING", "main"]

LOADING = "Loading SceneFlow and Prefect…"
INTERRUPTED = 130  # as sceneflow/app/cli/run.py: what a shell reports for Ctrl-C
# Options whose output is read whole (or by a shell): no status around them.
_QUIET_OPTIONS = frozenset({"--help", "--version", "--install-completion", "--show-completion"})
# Click's and Typer's shell completion run the command with one of these set.
_COMPLETION_VARIABLES = ("_SCENEFLOW_COMPLETE", "_TYPER_COMPLETE_ARGS")


def _quiet(args: Sequence[str], environ: Mapping[str, str]) -> bool:
    """Help (no arguments shows it too), version and shell completion: no status."""
    if not args or any(name in environ for name in _COMPLETION_VARIABLES):
        return True
    options = args[: args.index("--")] if "--" in args else args
    return any(arg in _QUIET_OPTIONS for arg in options)


def _terminal(stream: TextIO | None) -> Console | None:
    """A console on stderr if stderr is a real terminal that takes cursor movement.

    Rich alone would also draw on a stream forced to be a terminal (FORCE_COLOR, as some CI
    systems set), and a spinner in a log file is only noise."""
    if stream is None or not stream.isatty():
        return None
    console = Console(file=stream)
    return console if console.is_terminal and not console.is_dumb_terminal else None


@contextlib.contextmanager
def _loading(console: Console | None) -> Iterator[None]:
    """The status while the block runs, on `console`; nothing without one."""
    if console is None:
        yield
        return
    # No redirection of sys.stdout and sys.stderr: what is imported meanwhile (Prefect's logging
    # handlers) keeps the real streams, as it did before the launcher. The price: what the import
    # itself prints (Prefect's one-time telemetry notice, a warning) follows the status's line.
    live = Live(
        Spinner("dots", LOADING, style="cyan"),
        console=console,
        transient=True,
        refresh_per_second=12.5,
        redirect_stdout=False,
        redirect_stderr=False,
    )
    try:
        live.start(refresh=True)  # inside the try: a Ctrl-C while it starts still clears it
        yield
    finally:
        live.stop()  # erases the status and shows the cursor again


TELEMETRY_OFF = {"DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}


def main() -> None:
    """Show a status on a terminal while the command tree loads, then run the command."""
    console = None if _quiet(sys.argv[1:], os.environ) else _terminal(sys.stderr)
    # Prefect prints its telemetry notice while it is imported, before the CLI's own defaults
    # (sceneflow.app.cli) can turn it off; SceneFlow runs on offline machines and sends none.
    for name, value in TELEMETRY_OFF.items():
        os.environ.setdefault(name, value)
    try:
        with _loading(console):
            from sceneflow.app.cli import app
    except KeyboardInterrupt:
        sys.exit(INTERRUPTED)
    app()


if __name__ == "__main__":
    main()
