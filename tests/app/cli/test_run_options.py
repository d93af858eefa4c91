"""`sceneflow generate | batch` with audio, provider options and --strict: bad values and strict
refusals stop the command before Prefect starts or anything is sent."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from adapters import fal
from sceneflow.app.cli import app, run
from sceneflow.app.cli.run import _options, _provider_check, _strict_check
from sceneflow.errors import RequestValidationError
from sceneflow.models import StandardVideoRequest
from sceneflow.providers import enforce_strict
from sceneflow.settings import get_settings
from tests.support.emulators._base import serve
from tests.support.emulators.fal import FalEmulator

runner = CliRunner()


def error_line(*args: str) -> str:
    result: Result = runner.invoke(app, list(args))
    assert result.exit_code == 1, result.output
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith("Error: "), result.stderr
    return line.removeprefix("Error: ")


def test_option_values_are_json_where_they_are_json() -> None:
    assert _options('{"mode": "pro"}', ["loop=true", "steps=4", "name=fox", 'cam={"a": 1}']) == {
        "mode": "pro",
        "loop": True,
        "steps": 4,
        "name": "fox",
        "cam": {"a": 1},
    }
    with pytest.raises(RequestValidationError) as info:
        _options("[1]", ["loop"])
    assert info.value.problems == [
        "options: must be a JSON object of option names and values, not a JSON list; for "
        'example {"loop": true} (in a CSV cell: "{""loop"": true}", quotes doubled)',
        "options: --option 'loop' is not key=value; write it as --option loop=true",
    ]


def test_an_unknown_option_lists_the_known_ones() -> None:
    assert error_line("generate", "A kite", "--provider", "luma", "--option", "loop=yes") == (
        "Invalid request for provider 'luma': options.loop: luma model ray-2 takes true or "
        'false; got "yes"'
    )
    assert error_line("generate", "A kite", "--option", "mode=pro") == (
        "Invalid request for provider 'local': options.mode: local model procedural-v1 has no "
        "option 'mode' (it takes no options)"
    )


def test_a_valid_option_and_audio_pass_validation_and_stop_at_the_credentials() -> None:
    # luma needs a key: getting that far means the option and audio were accepted.
    line = error_line(
        "generate", "A kite", "--provider", "luma", "--duration", "5",
        "--option", "loop=true", "--no-audio", "--user", "nobody",
    )  # fmt: skip
    assert line.startswith("No credentials for provider 'luma' and user 'nobody'")


def test_strict_refuses_audio_the_local_renderer_cannot_make() -> None:
    line = error_line("generate", "A kite", "--audio", "--strict")
    assert line.startswith(
        "Invalid request for provider 'local': audio: local has no equivalent setting; it "
        "makes silent video only, so the clip has no sound [strict: refused before anything "
        "is sent;"
    )


def test_batch_strict_refuses_the_whole_batch_before_anything_is_sent(tmp_path: Path) -> None:
    source = tmp_path / "p.csv"
    source.write_text(
        "id,prompt,aspect_ratio,motion_intensity,audio\nok,a kite,16:9,3,\nloud,a bell,16:9,3,on\n"
    )
    out = tmp_path / "out"
    line = error_line("batch", str(source), "--strict", "--output", str(out))
    assert line.startswith(
        "Invalid request: strict: 1 row(s) would be sent without a field they set; row 3: "
        "audio: local has no equivalent setting; it makes silent video only"
    )
    assert not (out / "results.csv").exists()


def test_strict_reads_a_schema_models_schema_first_instead_of_refusing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    request = StandardVideoRequest(
        prompt="A fox", aspect_ratio="16:9", motion_intensity=5, model="fal-ai/acme/enum-video"
    )
    fal.SCHEMAS.clear()
    emu = FalEmulator(latency=0.2)
    try:
        with serve(emu.app) as url:
            monkeypatch.setenv("SCENEFLOW_BASE_URLS__FAL_SCHEMA", url)
            get_settings.cache_clear()
            # Unread, the schema model cannot be checked: strict refuses it.
            (unread,) = _provider_check("fal", request)
            assert unread.startswith("model: fal model fal-ai/acme/enum-video is not in")
            with pytest.raises(RequestValidationError):
                enforce_strict([unread], provider="fal", strict=True)
            # Read first (fal's schemas are public: no credentials), it is checked for real.
            warnings = _strict_check("nobody")("fal", request)
            assert not any(w.startswith("model:") for w in warnings)
            assert enforce_strict(warnings, provider="fal", strict=True) == warnings
    finally:
        fal.SCHEMAS.clear()
        get_settings.cache_clear()
    assert emu.submissions == 0


def test_a_batch_larger_than_the_local_api_carries_is_warned_about_up_front(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run.local_api_warning(run.LOCAL_API_ROWS, None) is None
    assert run.local_api_warning(run.LOCAL_API_ROWS + 1, "http://127.0.0.1:4200/api") is None
    monkeypatch.setattr(run, "LOCAL_API_ROWS", 2)
    monkeypatch.setattr(run.local_api, "configured_api_url", lambda: None)

    class Stop(Exception):
        pass

    def no_api() -> None:
        raise Stop  # the warning must come before Prefect starts

    monkeypatch.setattr(run, "_prefect_api", no_api)
    csv = tmp_path / "big.csv"
    csv.write_text(
        "prompt,aspect_ratio,motion_intensity\n" + "".join(f"clip {i},16:9,4\n" for i in range(3))
    )
    result = runner.invoke(app, ["batch", str(csv), "--output", str(tmp_path / "out")])
    assert isinstance(result.exception, Stop), result.output
    said = " ".join(result.output.split())
    assert "3 rows is more than the 2 the temporary local Prefect API was measured to carry" in said
    assert "export PREFECT_API_URL=http://127.0.0.1:4200/api" in said
