"""`sceneflow providers` fits an 80-column terminal, whatever providers are registered; the
details it leaves out are in `sceneflow providers KEY`."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner, Result

import adapters
from sceneflow.app.cli import app
from sceneflow.app.cli.console import console
from sceneflow.app.cli.providers import _durations
from sceneflow.providers import ModelCapabilities

runner = CliRunner()


@pytest.fixture(autouse=True)
def terminal_width_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Rich fixes a console's width when COLUMNS is set as it is made; the CLI's console is made
    # at import, so it is told to read COLUMNS again, as it does when COLUMNS was unset.
    monkeypatch.setattr(console, "_width", None)


def invoke(*args: str, columns: int) -> Result:
    result = runner.invoke(app, list(args), env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result


def test_the_list_fits_80_columns_and_names_every_registered_provider() -> None:
    lines = invoke("providers", columns=80).stdout.splitlines()

    too_long = [line for line in lines if len(line) > 80]
    assert too_long == []
    first_cells = {line.split()[0] for line in lines if line.strip()}
    assert set(adapters.REGISTRY) <= first_cells
    # Compact: at most two lines a provider, plus the header, its rule and the caption.
    assert len(lines) <= 2 * len(adapters.REGISTRY) + 3


def test_each_row_has_the_default_model_model_count_cancel_and_credentials() -> None:
    lines = invoke("providers", columns=200).stdout.splitlines()

    assert lines[0].split() == ["Provider", "Default", "model", "Models", "Cancel", "Credentials"]
    rows = {line.split()[0]: line for line in lines[2:] if line.strip()}
    for key in adapters.REGISTRY:
        caps = adapters.get_adapter(key).capabilities()
        cells = rows[key].split(maxsplit=4)
        assert cells[:4] == [key, caps.default_model, str(len(caps.models))] + [
            "yes" if caps.can_cancel else "no"
        ]
        assert cells[4].strip() == (", ".join(caps.credential_fields) or "none")
    assert lines[-1].rstrip() == "Details: sceneflow providers KEY"
    assert "Connection test" not in "\n".join(lines)


@pytest.mark.parametrize("key", sorted(adapters.REGISTRY))
def test_the_details_show_every_model_and_the_connection_test(key: str) -> None:
    output = invoke("providers", key, columns=80).stdout
    caps = adapters.get_adapter(key).capabilities()

    flat = " ".join(output.split())
    assert f"Connection test {' '.join(caps.connection_test.split())}" in flat
    for model in caps.models:
        assert f"{key} / {model}" in output
    # Tables and the summary wrap to the terminal; the one-line limits may run longer.
    lines = [line for line in output.splitlines() if not line.startswith("aspect ratios: ")]
    assert [line for line in lines if len(line) > 80] == []


@pytest.mark.parametrize(
    ("durations", "text"),
    [
        ([4.0, 6.0, 8.0], "4, 6, 8 s"),
        ([2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], "2-10 s, whole seconds"),
        ([5.0, 9.0], "5, 9 s"),
        ([1.5, 2.5, 3.5, 4.5], "1.5, 2.5, 3.5, 4.5 s"),
        (None, "1-20 s"),
    ],
)
def test_durations_are_short(durations: list[float] | None, text: str) -> None:
    caps = ModelCapabilities.model_validate(
        {
            "fields": {},
            "aspect_ratios": ["16:9"],
            "durations": durations,
            "min_duration": 1,
            "max_duration": 20,
        }
    )
    assert _durations(caps) == text
