"""`sceneflow providers` fits an 80-column terminal, whatever providers are registered; the
details it leaves out are in `sceneflow providers KEY`, and one model's mapping (read from its
published schema for a Replicate or fal model outside the table) in `--model`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from typer.testing import CliRunner, Result

import adapters
from adapters import fal as fal_adapter
from adapters import replicate as replicate_adapter
from sceneflow.app.cli import app
from sceneflow.app.cli.console import console
from sceneflow.app.cli.providers import _durations
from sceneflow.providers import ModelCapabilities
from sceneflow.settings import get_settings
from tests.support.emulators._base import Emulator, serve
from tests.support.emulators.fal import FalEmulator
from tests.support.emulators.replicate import TOKEN as REPLICATE_TOKEN
from tests.support.emulators.replicate import VERSIONS as REPLICATE_VERSIONS
from tests.support.emulators.replicate import create_app as replicate_emulator_app

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


# -- one model: --model ---------------------------------------------------------------------


@pytest.fixture
def replicate_emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Starlette, str]]:
    replicate_adapter.SCHEMAS.clear()
    app = replicate_emulator_app(Emulator())
    with serve(app) as url:
        monkeypatch.setenv("SCENEFLOW_BASE_URLS__REPLICATE", url)
        yield app, url
    replicate_adapter.SCHEMAS.clear()


def run_cli(*args: str, input: str | None = None) -> Result:
    get_settings.cache_clear()
    return runner.invoke(app, list(args), input=input, env={"COLUMNS": "200"})


def test_model_prints_the_mapping_read_from_a_replicate_schema_with_the_users_token(
    replicate_emulator: tuple[Starlette, str],
) -> None:
    emulator, _ = replicate_emulator
    assert run_cli("creds", "set", "ana", "replicate", input=REPLICATE_TOKEN).exit_code == 0
    result = run_cli("providers", "replicate", "--model", "acme/frames-video", "--user", "ana")
    assert result.exit_code == 0, result.output
    out = result.stdout
    version = next(v for v, m in REPLICATE_VERSIONS.items() if m == "acme/frames-video")
    assert f"Limits from the published input schema of its latest version {version}." in out
    assert "replicate / acme/frames-video" in out
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") == 4}
    assert "input 'num_frames' = duration x fps (input 'frames_per_second')" in rows["duration"]
    assert "mapped" in rows["resolution"] and "inputs 'width' and 'height'" in rows["resolution"]
    assert "input 'first_frame_image' (required)" in rows["image_url"]
    assert "unsupported" in rows["negative_prompt"]
    assert "aspect ratios: 16:9, 9:16, 1:1, 4:3, 3:4, 21:9; durations: 1.06-10.06 s" in out
    assert "takes: image to video" in out
    # The token went to the emulator only as the Bearer header, and never to the output.
    (read,) = [e for e in emulator.state.recorded if e["method"] == "GET"]
    assert read["path"] == "/v1/models/acme/frames-video"
    assert read["headers"]["authorization"] == f"Bearer {REPLICATE_TOKEN}"
    assert REPLICATE_TOKEN not in result.output


def test_model_reports_the_audio_switch_and_the_inputs_left_at_their_defaults(
    replicate_emulator: tuple[Starlette, str],
) -> None:
    run_cli("creds", "set", "default", "replicate", input=REPLICATE_TOKEN)
    out = run_cli("providers", "replicate", "--model", "acme/enum-video").stdout
    assert "audio" in out and "Inputs no request field sets" not in out  # all are mapped
    assert (
        "Note: audio: the model has a switch, input 'generate_audio' (default true); the "
        "request's audio sets it, and unset leaves the model's default" in out
    )


def test_model_errors_are_one_line(replicate_emulator: tuple[Starlette, str]) -> None:
    missing = run_cli("providers", "replicate", "--model", "acme/enum-video", "--user", "bo")
    assert missing.exit_code == 1 and missing.stdout == ""
    assert missing.stderr.startswith("Error: ") and "bo" in missing.stderr
    assert "sceneflow creds set" in missing.stderr
    run_cli("creds", "set", "default", "replicate", input=REPLICATE_TOKEN)
    unknown = run_cli("providers", "replicate", "--model", "nobody/nothing")
    assert unknown.exit_code == 1 and unknown.stderr.count("\n") == 1
    assert "Replicate has no model 'nobody/nothing' that this token can see" in unknown.stderr
    no_key = run_cli("providers", "--model", "acme/enum-video")
    assert no_key.exit_code == 1
    assert "--model needs a provider: `sceneflow providers replicate --model" in no_key.stderr
    local = run_cli("providers", "local", "--model", "nope")
    assert local.exit_code == 1 and "local has no model 'nope'; its models:" in local.stderr


def test_model_of_the_built_in_table_needs_no_credentials() -> None:
    result = run_cli("providers", "replicate", "--model", "google/veo-3.1", "--user", "nobody")
    assert result.exit_code == 0, result.output
    assert "Limits from SceneFlow's built-in table." in result.stdout
    assert "aspect ratios: 16:9, 9:16; durations: 4, 6, 8 s" in result.stdout


def test_model_reads_a_fal_schema_without_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    fal_adapter.SCHEMAS.clear()
    emulator = FalEmulator()
    with serve(emulator.app) as url:
        monkeypatch.setenv("SCENEFLOW_BASE_URLS__FAL_SCHEMA", url)
        result = run_cli("providers", "fal", "--model", "fal-ai/acme/range-video")
    fal_adapter.SCHEMAS.clear()
    assert result.exit_code == 0, result.output
    assert "Limits from its published OpenAPI document" in result.stdout
    assert "input 'fps': whole numbers from 8 to 30" in result.stdout
    assert "durations: 2-12 s" in result.stdout
    assert "  guidance_scale: numbers from 1 to 20 (default 7.5)" in result.stdout
    assert [e["headers"].get("authorization") for e in emulator.log] == [None]


def test_a_provider_lists_each_models_options_within_80_columns() -> None:
    get_settings.cache_clear()
    result = runner.invoke(app, ["providers", "kling"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "kling / kling-v1: options" in out and "options: none" in out  # v2-master has none
    rows = [line.split() for line in out.splitlines()]
    assert ["mode", "string", '"std"', "or", '"pro"', "the", "mode,", "instead", "of"] in rows
    assert any(r[:2] == ["camera_control", "object"] for r in rows)
    assert all(len(line) <= 80 for line in out.splitlines() if "options" in line or "mode" in line)


def test_a_schema_models_other_inputs_are_its_options(
    replicate_emulator: tuple[Starlette, str],
) -> None:
    run_cli("creds", "set", "default", "replicate", input=REPLICATE_TOKEN)
    out = run_cli("providers", "replicate", "--model", "acme/range-video").stdout
    assert "replicate / acme/range-video: options" in out
    (row,) = [line for line in out.splitlines() if line.startswith("guidance_scale")]
    assert row.split()[:2] == ["guidance_scale", "number"] and "from 1 to 20" in row
