"""gs:// first frames on the CLI's validation paths (generate, and the CSV rows of batch, with
and without --strict) and the flows' (`tasks.generation.check_request`): each goes through
`sceneflow.providers.validate_request`, so a provider that cannot read Cloud Storage refuses a
gs:// image there, by its row in a CSV, and a malformed one is refused by the request model."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from sceneflow import preflight, prompts
from sceneflow.app.cli import app
from sceneflow.app.cli.run import _capabilities, _provider_check, _strict_check
from sceneflow.errors import RequestValidationError
from sceneflow.models import StandardVideoRequest
from tasks.generation import check_request

runner = CliRunner()
GS = "gs://sf-bucket/frames/fox.png"
REFUSAL = (
    "image_url: {key} cannot read a gs:// image (providers that take one: vertex). Use an "
    "https URL it can fetch instead (for a private object, a signed URL from `gcloud storage "
    "sign-url " + GS + "`), a data: URL, or the provider vertex"
)
CSV = (
    "id,provider,prompt,aspect_ratio,motion_intensity,duration,image_url\n"
    f"fox,vertex,a fox,16:9,5,8,{GS}\n"
    f"kite,runway,a kite,16:9,5,5,{GS}\n"
    "owl,vertex,an owl,16:9,5,8,gs://ab/owl.png\n"
    "bee,local,a bee,16:9,5,5,https://img.test/bee.png\n"
)


def error_line(*args: str) -> str:
    result: Result = runner.invoke(app, list(args))
    assert result.exit_code == 1, result.output
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith("Error: "), result.stderr
    return line.removeprefix("Error: ")


@pytest.mark.parametrize(
    "check",
    [_provider_check, _strict_check("nobody"), check_request],
    ids=["cli", "cli-strict", "flows"],
)
@pytest.mark.parametrize("strict", [False, True])
def test_a_csv_row_with_a_gs_image_for_another_provider_is_reported_by_its_row(
    check: preflight.ProviderCheck, strict: bool, tmp_path: Path
) -> None:
    (tmp_path / "p.csv").write_text(CSV)
    frame = prompts.read_csv_text(str(tmp_path / "p.csv"))
    batch = prompts.parse_prompts(
        frame, default_provider="local", provider_check=check, strict=strict
    )
    assert [(r.row_id, r.request.image_url) for r in batch.rows] == [("fox", GS)]
    assert [p.message() for p in batch.problems] == [
        "row 3: " + REFUSAL.format(key="runway"),
        "row 4: image_url: 'gs://ab/owl.png' is not a Cloud Storage object: the bucket name 'ab' "
        "must be 3 to 63 characters (up to 222 with dots); allowed: an http(s) URL, a data: "
        "URL, or a Cloud Storage object gs://BUCKET/OBJECT (such as "
        "gs://my-bucket/frames/first.png)",
        # Another image is each provider's own business, as before.
        "row 5: image_url: the local renderer works offline and reads only data: URLs; embed "
        "the image as a data: URL or leave it out",
    ]


def test_generate_refuses_a_gs_image_for_another_provider_before_anything_else() -> None:
    # Before the credentials are looked up: nothing is opened, nothing is sent.
    line = error_line(
        "generate", "A kite", "--provider", "runway", "--image-url", GS, "--user", "nobody",
    )  # fmt: skip
    assert line == "Invalid request for provider 'runway': " + REFUSAL.format(key="runway")


def test_check_single_refuses_it_through_the_same_check() -> None:
    request = StandardVideoRequest(
        prompt="A kite", aspect_ratio="16:9", motion_intensity=5, image_url=GS
    )
    with pytest.raises(RequestValidationError) as exc:
        preflight.check_single(
            "out",
            user_id="nobody",
            provider="luma",
            request=request,
            provider_check=_provider_check,
            capabilities_for=_capabilities,
        )
    assert exc.value.problems[0] == REFUSAL.format(key="luma")


def test_a_malformed_gs_url_is_refused_by_the_request_model_on_the_command_line() -> None:
    line = error_line("generate", "A kite", "--provider", "vertex", "--image-url", "gs://sf-bucket")
    assert "image_url: 'gs://sf-bucket' names a bucket but no object; allowed: an http(s) URL" in (
        line
    )
