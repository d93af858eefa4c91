"""`sceneflow providers [KEY]`: what each provider can do, and how each field reaches it."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

import adapters
from sceneflow import credentials
from sceneflow.app.cli.console import console, handle_errors, require_provider
from sceneflow.errors import ConfigError, RequestValidationError
from sceneflow.providers import Capabilities, ModelCapabilities, OptionSpec, VideoAdapter


@handle_errors
def providers(
    key: Annotated[
        str | None, typer.Argument(help="Show one provider's models, connection test and fields.")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Show how each field reaches this model. A Replicate or fal model outside the "
            "built-in table is read from its published input schema.",
        ),
    ] = None,
    user: Annotated[
        str,
        typer.Option(
            "--user", help="Whose stored credentials read a schema that needs them (Replicate)."
        ),
    ] = "default",
) -> None:
    """List the providers; with KEY, show one provider in detail; with --model, one model."""
    if model is not None:
        if key is None:
            raise ConfigError(
                "--model needs a provider: `sceneflow providers replicate --model owner/name`"
            )
        _model_details(adapters.get_adapter(require_provider(key)), model, user)
        return
    if key is None:
        # The console soft-wraps (long lines stay whole for scripts), which would let a table
        # grow past the terminal's width; tables are laid out to fit it instead.
        console.print(_provider_list(), soft_wrap=False)
        return
    caps = adapters.get_adapter(require_provider(key)).capabilities()
    console.print(_provider_details(caps), soft_wrap=False)
    for model, model_caps in caps.models.items():
        table = Table("Field", "Support", "How", title=f"{key} / {model}")
        for field, mapping in model_caps.fields.items():
            table.add_row(field, mapping.support, mapping.note)
        console.print(table, soft_wrap=False)
        ratios = ", ".join(model_caps.aspect_ratios)
        # One line a model, whole (scripts grep it): soft-wrapped by the terminal if it must be.
        console.print(f"aspect ratios: {ratios}; durations: {_durations(model_caps)}")
        _print_options(key, model, model_caps.options)


def _print_options(key: str, model: str, options: dict[str, OptionSpec]) -> None:
    """The model's own settings a request may pass in `options`, laid out for 80 columns."""
    if not options:
        console.print("options: none")
        return
    table = Table(
        "Option",
        "Type",
        "Allowed",
        "What",
        title=f"{key} / {model}: options",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
    )
    table.columns[0].overflow = "fold"
    table.columns[2].overflow = "fold"
    table.columns[3].overflow = "fold"
    for name, spec in options.items():
        table.add_row(name, spec.type, spec.allowed(), spec.description)
    console.print(table, soft_wrap=False)


def _model_details(adapter: VideoAdapter, model: str, user: str) -> None:
    """One model's mapping: from the built-in table, else read from its published schema."""
    caps = adapter.capabilities()
    describe = getattr(adapter, "describe_model", None)
    source, unused, notes = "SceneFlow's built-in table", [], []
    if model in caps.models:  # built in: nothing to read
        model_caps = caps.models[model]
    elif describe is None:
        raise RequestValidationError(
            [f"model: {adapter.key} has no model {model!r}; its models: {', '.join(caps.models)}"],
            provider=adapter.key,
        )
    else:
        opened = (
            credentials.open_credentials(user, caps)
            if getattr(adapter, "schema_credentials", True)
            else None
        )

        async def read() -> Any:
            try:
                return await describe(model, opened)
            finally:
                await adapter.aclose()

        report = asyncio.run(read())
        model_caps, source = report.capabilities, report.source
        unused, notes = report.unused, report.notes
    table = Table("Field", "Support", "How", title=f"{adapter.key} / {model}")
    for field, mapping in model_caps.fields.items():
        table.add_row(field, mapping.support, mapping.note)
    console.print(f"Limits from {source}.")
    console.print(table, soft_wrap=False)
    ratios = ", ".join(model_caps.aspect_ratios)
    console.print(f"aspect ratios: {ratios}; durations: {_durations(model_caps)}")
    kinds = [
        k
        for k, on in (("text", model_caps.text_to_video), ("image", model_caps.image_to_video))
        if on
    ]
    console.print(f"takes: {' and '.join(kinds)} to video")
    _print_options(adapter.key, model, model_caps.options)
    if unused:
        console.print(
            "Inputs no request field sets (their defaults apply unless given in options):"
        )
        for line in unused:
            console.print(f"  {line}")
    for note in notes:
        console.print(f"Note: {note}")


def _provider_list() -> Table:
    """A compact table that fits an 80-column terminal (a long model id folds onto a second
    line there); every model and the connection test are in `sceneflow providers KEY`."""
    table = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        caption="Details: sceneflow providers KEY",
        caption_justify="left",
    )
    table.add_column("Provider", no_wrap=True)
    # Model ids have no spaces to wrap at; the widest column they can have keeps most on one
    # line, and the rare longer one folds rather than being cut.
    table.add_column("Default model", overflow="fold", min_width=30)
    table.add_column("Models", justify="right", no_wrap=True)
    table.add_column("Cancel", no_wrap=True)
    table.add_column("Credentials", overflow="fold")
    for name in adapters.known():
        caps = adapters.get_adapter(name).capabilities()
        table.add_row(
            name,
            caps.default_model,
            str(len(caps.models)),
            "yes" if caps.can_cancel else "no",
            ", ".join(caps.credential_fields) or "none",
        )
    return table


def _provider_details(caps: Capabilities) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row("Provider", caps.provider)
    grid.add_row("Default model", caps.default_model)
    grid.add_row("Models", ", ".join(caps.models))
    grid.add_row("Cancel", "yes" if caps.can_cancel else "no")
    grid.add_row("Credentials", ", ".join(caps.credential_fields) or "none")
    grid.add_row("Connection test", caps.connection_test)
    return grid


def _durations(caps: ModelCapabilities) -> str:
    """'4, 6, 8 s', '2-10 s, whole seconds' for a run of whole seconds, or '1-20 s'."""
    listed = caps.durations
    if not listed:
        return f"{caps.min_duration:g}-{caps.max_duration:g} s"
    whole = [int(d) for d in listed if float(d).is_integer()]
    if len(whole) == len(listed) > 3 and whole == list(range(whole[0], whole[-1] + 1)):
        return f"{whole[0]}-{whole[-1]} s, whole seconds"
    return ", ".join(f"{d:g}" for d in listed) + " s"
