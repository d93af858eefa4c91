"""`sceneflow providers [KEY]`: what each provider can do, and how each field reaches it."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

import adapters
from sceneflow.app.cli.console import console, handle_errors, require_provider


@handle_errors
def providers(
    key: Annotated[str | None, typer.Argument(help="Show one provider's field mapping.")] = None,
) -> None:
    """List the providers and their capabilities."""
    if key is None:
        table = Table(
            "Provider", "Default model", "Models", "Cancel", "Credentials", "Connection test"
        )
        for name in adapters.known():
            caps = adapters.get_adapter(name).capabilities()
            table.add_row(
                name,
                caps.default_model,
                ", ".join(caps.models),
                "yes" if caps.can_cancel else "no",
                ", ".join(caps.credential_fields) or "none",
                caps.connection_test,
            )
        console.print(table)
        return
    caps = adapters.get_adapter(require_provider(key)).capabilities()
    for model, model_caps in caps.models.items():
        table = Table("Field", "Support", "How", title=f"{key} / {model}")
        for field, mapping in model_caps.fields.items():
            table.add_row(field, mapping.support, mapping.note)
        console.print(table)
        durations = model_caps.durations or (
            f"{model_caps.min_duration:g}-{model_caps.max_duration:g} s"
        )
        ratios = ", ".join(model_caps.aspect_ratios)
        console.print(f"aspect ratios: {ratios}; durations: {durations}")
