"""`strict` as a flow parameter (the UI's form, deployments): a request the provider would run
without a field it sets is refused before anything is sent, in both flows."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.batch import generate_batch
from flows.generate import generate_video
from sceneflow.errors import RequestValidationError
from sceneflow.models import StandardVideoRequest

pytestmark = pytest.mark.usefixtures("prefect_harness")

LOUD = StandardVideoRequest(prompt="A bell", aspect_ratio="16:9", motion_intensity=3, audio=True)


async def test_generate_video_with_strict_refuses_a_field_the_provider_lacks(tmp_path: Path):
    with pytest.raises(RequestValidationError, match="audio: local has no equivalent setting"):
        await generate_video("ann", "local", LOUD, output_dir=str(tmp_path), strict=True)
    assert not list(tmp_path.glob("*.mp4"))


async def test_generate_batch_with_strict_makes_such_a_row_invalid_and_runs_the_rest(
    tmp_path: Path,
):
    source = tmp_path / "p.csv"
    source.write_text(
        "id,prompt,aspect_ratio,motion_intensity,duration,audio\n"
        "quiet,a kite,16:9,3,1,\nloud,a bell,16:9,3,1,on\n"
    )
    summary = await generate_batch(
        str(source), "ann", "local", output_dir=str(tmp_path / "out"), strict=True
    )
    assert (summary.completed, summary.invalid) == (1, 1)
    results = (tmp_path / "out" / "results.csv").read_text()
    assert "audio: local has no equivalent setting" in results and "strict" in results
