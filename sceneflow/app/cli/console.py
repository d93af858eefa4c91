"""What every command shares: the consoles, the one-line error printer, and small checks.

Every `SceneFlowError` becomes one red `Error: ...` line on stderr and exit code 1, and since each
command runs in one `db.session_scope()`, a failed command leaves nothing stored changed. New
commands reuse the same pattern: decorate with `@handle_errors` and open a `session_scope()`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.text import Text

import adapters
from sceneflow.errors import SceneFlowError, UnknownProviderError
from sceneflow.models import GatewayResponse

__all__ = ["console", "err_console", "handle_errors", "print_error", "require_provider", "unwrap"]

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

P = ParamSpec("P")
R = TypeVar("R")


def print_error(message: str) -> None:
    """One line, whatever the message: scripts read the first line of stderr."""
    err_console.print(Text.assemble(("Error: ", "bold red"), " ".join(message.split())))


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn a `SceneFlowError` into a one-line `Error: ...` on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except SceneFlowError as e:
            print_error(str(e))
            raise typer.Exit(1) from e

    return wrapper


def unwrap(response: GatewayResponse[Any]) -> Any:
    """The gateway's data, or its message as an error line and exit code 1."""
    if not response.success:
        print_error(response.message or response.error or "the gateway call failed")
        raise typer.Exit(1)
    return response.data


def require_provider(provider: str) -> str:
    """The provider key, if the registry knows it."""
    if provider not in adapters.REGISTRY:
        raise UnknownProviderError(provider, adapters.known())
    return provider
