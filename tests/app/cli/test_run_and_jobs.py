"""The commands that run generations (generate, batch, status, cancel, providers, creds test),
through Typer's CliRunner, against the local provider and Runway's emulator on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner, Result

import adapters
from sceneflow import db, store
from sceneflow.app.cli import app
from sceneflow.app.gateway import VideoGenerationGateway
from sceneflow.media import probe_video
from sceneflow.models import StandardVideoRequest
from sceneflow.settings import get_settings
from tests.support.emulators._base import serve
from tests.support.emulators.runway import RunwayEmulator

USER = "cliuser"
KEY = "key_" + "c11c0ffe" * 16
WRONG_KEY = "key_" + "deadbeef" * 16
TINY = ("--resolution", "160x90", "--duration", "1", "--fps", "12")
runner = CliRunner()


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args))


def one_error_line(result: Result) -> str:
    assert result.exit_code == 1, result.output
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith("Error: "), result.stderr
    return line.removeprefix("Error: ")


def put_key(key: str) -> None:
    with db.session_scope() as session:
        store.put_credentials(
            session=session, user_id=USER, provider="runway", credentials={"api_key": key}
        )


def validity() -> bool | None:
    with db.session_scope() as session:
        config = store.get_config(session=session, user_id=USER, provider="runway")
        assert config is not None
        return config.is_valid


@pytest.fixture
def runway(monkeypatch: pytest.MonkeyPatch) -> Iterator[RunwayEmulator]:
    emu = RunwayEmulator(api_key=KEY, latency=30)  # jobs stay running while the test looks
    with serve(emu.app) as url:
        monkeypatch.setenv("SCENEFLOW_BASE_URLS__RUNWAY", url)
        get_settings.cache_clear()
        put_key(KEY)
        yield emu
    get_settings.cache_clear()


def test_providers_lists_every_key() -> None:
    result = invoke("providers")
    assert result.exit_code == 0, result.output
    for key in adapters.known():
        assert key in result.stdout
    assert "gen4.5" in result.stdout and "ray-2" in result.stdout


def test_providers_with_a_key_shows_its_field_mapping() -> None:
    result = invoke("providers", "runway")
    assert result.exit_code == 0, result.output
    for model in ("gen4.5", "gen4_turbo", "veo3.1", "veo3.1_fast"):
        assert f"runway / {model}" in result.stdout
    for field in ("prompt", "aspect_ratio", "motion_intensity", "duration", "fps", "seed"):
        assert field in result.stdout
    assert "native" in result.stdout and "mapped" in result.stdout
    assert "unsupported" in result.stdout
    limits = [line for line in result.stdout.splitlines() if line.startswith("aspect ratios: ")]
    assert len(limits) == 4 and all("; durations: " in line for line in limits)
    assert sum(line.startswith("aspect ratios: 16:9, 9:16;") for line in limits) == 2  # Veo
    assert one_error_line(invoke("providers", "sora")).startswith("Unknown provider 'sora'.")


@pytest.mark.usefixtures("prefect_harness")
def test_generate_with_the_local_provider_writes_the_video(tmp_path: Path) -> None:
    out = tmp_path / "videos"
    result = invoke("generate", "A teal kite over a beach", *TINY, "--output", str(out))
    assert result.exit_code == 0, result.output
    done = [line for line in result.stdout.splitlines() if line.startswith("Done: ")]
    assert len(done) == 1
    video = Path(done[0].removeprefix("Done: "))
    assert video.parent == out
    info = probe_video(video)
    assert (info.width, info.height, info.fps) == (160, 90, 12)


def test_generate_with_a_bad_request_names_every_problem() -> None:
    result = invoke(
        "generate", " ", "--aspect-ratio", "5:4", "--duration", "200", "--fps", "100",
        "--motion-intensity", "11", "--resolution", "huge",
    )  # fmt: skip
    message = one_error_line(result)
    assert message.startswith("Invalid request: ")
    for problem in (
        "prompt: must not be blank",
        "aspect_ratio: must be one of '16:9', '9:16', '1:1', '4:3', '3:4' or '21:9'",
        "motion_intensity: Input should be less than or equal to 10; allowed: a whole number "
        "from 1 to 10",
        "duration: Input should be less than or equal to 120; allowed: 1 to 120 seconds",
        'resolution: must be "WxH"',
        "fps: Input should be less than or equal to 60; allowed: a whole number from 6 to 60",
    ):
        assert problem in message
    assert result.stdout == ""


@pytest.mark.usefixtures("prefect_harness")
def test_generate_refuses_what_the_provider_cannot_do_before_sending_it(
    runway: RunwayEmulator,
) -> None:
    result = invoke(
        "generate", "A lighthouse", "--provider", "runway", "--user", USER,
        "--duration", "15", "--aspect-ratio", "4:3",
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    # Prefect logs the failed flow run above it; the last line is SceneFlow's own.
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: Invalid request for provider 'runway': ")
    assert "aspect_ratio: gen4.5 text-to-video supports 16:9, 9:16; got 4:3" in last
    assert "duration: gen4.5 takes whole seconds from 2 to 10; got 15" in last
    assert runway.submissions == 0


@pytest.mark.usefixtures("prefect_harness")
def test_batch_with_a_bad_row_exits_1_and_says_what_failed_and_where(tmp_path: Path) -> None:
    source = tmp_path / "prompts.csv"
    source.write_text(
        "id,prompt,aspect_ratio,motion_intensity,duration,resolution,fps\n"
        "good,Blue ocean waves,16:9,3,1,160x90,12\n"
        "bad,Wrong shape,5:4,3,1,160x90,12\n"
    )
    out = tmp_path / "out"
    result = invoke("batch", str(source), "--user", USER, "--output", str(out))
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert "1 of 2 rows completed, 0 failed, 1 invalid." in lines
    assert any(line.strip().startswith("row 3: aspect_ratio: must be one of") for line in lines)
    assert f"Results: {out}/results.csv" in lines
    assert f"Gallery: {out}/index.html (open it in a browser)" in lines
    results = pd.read_csv(out / "results.csv", dtype=str, keep_default_na=False)
    good = results[results["id"] == "good"].iloc[0]
    assert good["status"] == "COMPLETED" and Path(good["output_path"]).is_file()

    # `status` answers a finished job from the job table.
    status = invoke("status", good["job_id"])
    assert status.exit_code == 0, status.output
    assert "COMPLETED" in status.stdout and good["provider_job_id"] in status.stdout


def test_status_and_cancel_a_running_job(runway: RunwayEmulator) -> None:
    request = StandardVideoRequest(
        prompt="A slow sunrise", aspect_ratio="16:9", motion_intensity=2, duration=5
    )
    triggered = asyncio.run(VideoGenerationGateway().trigger_generation(USER, request, "runway"))
    assert triggered.data is not None
    job_id = triggered.data.provider_details["job_id"]
    (task_id,) = runway.jobs

    status = invoke("status", job_id)
    assert status.exit_code == 0, status.output
    assert "QUEUED" in status.stdout and task_id in status.stdout

    cancelled = invoke("cancel", task_id)  # the provider's job id works too
    assert cancelled.exit_code == 0, cancelled.output
    assert "CANCELLED" in cancelled.stdout
    assert runway.jobs[task_id].cancelled

    after = invoke("status", job_id)
    assert after.exit_code == 0 and "CANCELLED" in after.stdout


def test_status_and_cancel_of_an_unknown_job_are_one_line_errors() -> None:
    expected = (
        "No job 'nosuchjob'. Use the job_id column of results.csv or the id `sceneflow "
        "generate` printed."
    )
    assert one_error_line(invoke("status", "nosuchjob")) == expected
    assert one_error_line(invoke("cancel", "nosuchjob")) == expected


def test_creds_test_marks_a_good_key_valid_and_a_rejected_one_invalid(
    runway: RunwayEmulator,
) -> None:
    good = invoke("creds", "test", USER, "runway")
    assert good.exit_code == 0, good.output
    assert good.stdout.strip() == f"runway accepted the credentials of '{USER}' (is_valid: yes)"
    assert validity() is True

    put_key(WRONG_KEY)
    bad = invoke("creds", "test", USER, "runway")
    assert one_error_line(bad) == (
        f"runway rejected the credentials of '{USER}' (is_valid: no). Store working ones with "
        f"`sceneflow creds set {USER} runway`."
    )
    assert validity() is False
    assert WRONG_KEY not in bad.output


def test_a_missing_csv_unknown_columns_or_missing_credentials_fail_before_any_flow_runs(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "nope.csv"
    assert one_error_line(invoke("batch", str(missing))) == (
        f"Prompt CSV not found: {missing}. Pass an existing file or URL."
    )
    bad = tmp_path / "bad.csv"
    bad.write_text("prompt,aspect_ratio,motion_intensity,colour\nx,16:9,3,red\n")
    assert one_error_line(invoke("batch", str(bad))).startswith(
        "Unknown column(s) colour. Allowed columns: aspect_ratio, audio, duration,"
    )
    assert one_error_line(invoke("generate", "a cat", "--provider", "runway", "--user", "bob")) == (
        "No credentials for provider 'runway' and user 'bob': run `sceneflow creds set bob runway`"
    )
