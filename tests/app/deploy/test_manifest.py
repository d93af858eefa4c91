"""The deployments manifest: whole-file validation with row and field in every message, and an
apply that is idempotent against a real Prefect API (the test harness)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

import adapters
from sceneflow.app import cli
from sceneflow.app.deploy import manifest

REPO = Path(__file__).resolve().parents[3]
KNOWN = ", ".join(repr(k) for k in adapters.REGISTRY)
KNOWN = KNOWN.rsplit(", ", 1)[0] + " or " + KNOWN.rsplit(", ", 1)[1]
HEADER = "name,flow,source,user,provider,cron,timezone,concurrency,output,active\n"
runner = CliRunner()


def invoke(*args: str) -> Result:
    return runner.invoke(cli.app, list(args))


def write(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    path = tmp_path / "schedules.csv"
    path.write_text(header + body, encoding="utf-8")
    return path


def test_every_bad_row_is_reported_with_its_row_and_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "good,batch,a.csv,u1,local,0 6 * * *,UTC,2,,true\n"
        "bad-cron,batch,a.csv,u1,local,61 * * * *,UTC,2,,true\n"
        "bad-tz,batch,a.csv,u1,local,0 6 * * *,Mars/Olympus,2,,true\n"
        "bad-conc,batch,a.csv,u1,local,,UTC,0,,true\n"
        "bad-provider,batch,a.csv,u1,sora,,UTC,2,,true\n"
        "good,batch,b.csv,u1,local,,UTC,2,,true\n"
        "no-user,batch,a.csv,,local,,UTC,2,,true\n"
        "batch-from-csv,batch,a.csv,u1,local,,UTC,2,,true\n"
        "Bad Name,inbox,in,u1,local,,UTC,2,,maybe\n",
    )
    with pytest.raises(manifest.ManifestError) as caught:
        manifest.load_manifest(path, reserved=manifest.prefect_yaml_names(REPO / "prefect.yaml"))
    problems = caught.value.problems
    expected = [
        "row 3: cron: '61 * * * *' is not a cron expression Prefect accepts",
        "row 4: timezone: 'Mars/Olympus' is not an IANA time zone",
        "row 5: concurrency: Input should be greater than or equal to 1",
        # The list follows the registry, so a new provider needs no change here.
        f"row 6: provider: must be one of {KNOWN}",
        "row 7: name: 'good' is already used by row 2; deployment names must be unique",
        "row 8: user: Field required",
        "row 9: name: 'batch-from-csv' is defined in prefect.yaml; pick another name",
        "row 10: name: 'Bad Name' must be 1 to 63 lowercase letters",
        "row 10: active: Input should be a valid boolean",
    ]
    assert len(problems) == len(expected), problems
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(start), (problem, start)


def test_unknown_column_names_the_column(tmp_path: Path) -> None:
    path = write(tmp_path, "x,batch,a.csv,u1,local,,UTC,2,,true,7\n", HEADER.strip() + ",shards\n")
    with pytest.raises(manifest.ManifestError, match=r"row 2: shards: is not a known column"):
        manifest.load_manifest(path)


def test_check_validates_the_shipped_manifest_and_reports_bad_ones_in_one_line(
    tmp_path: Path,
) -> None:
    ok = invoke("deployments", "apply", str(REPO / "deployments" / "schedules.csv"), "--check")
    assert ok.exit_code == 0, ok.output
    assert "3 deployment(s), all rows valid" in ok.stdout
    bad = write(tmp_path, "nightly,batch,a.csv,u1,local,0 6 * * *,Europe/Berln,2,,true\n")
    result = invoke("deployments", "apply", str(bad), "--check")
    assert result.exit_code == 1
    assert result.stderr.strip().startswith("Error: ")
    assert "row 2: timezone: 'Europe/Berln' is not an IANA time zone" in result.stderr


def _rows(tmp_path: Path) -> Path:
    shutil.copy(REPO / "deployments" / "examples" / "prompts.csv", tmp_path / "prompts.csv")
    return write(
        tmp_path,
        f"nightly,batch,{tmp_path / 'prompts.csv'},demo,local,0 2 * * *,Europe/Berlin,4,,true\n"
        f"drop-box,inbox,{tmp_path / 'inbox'},demo,local,*/10 * * * *,America/New_York,2,,false\n"
        f"by-hand,batch,{tmp_path / 'prompts.csv'},demo,local,,UTC,1,,true\n",
    )


async def _deployments() -> dict[str, Any]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return {
            name: await client.read_deployment_by_name(name)
            for name in (
                "generate-batch/nightly",
                "process-inbox/drop-box",
                "generate-batch/by-hand",
            )
        }


async def _ensure_pool() -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    async with get_client() as client:
        try:
            await client.create_work_pool(WorkPoolCreate(name="sceneflow-pool", type="process"))
        except ObjectAlreadyExists:
            pass


@pytest.mark.usefixtures("prefect_harness")
def test_apply_creates_then_changes_nothing_then_updates_only_what_changed(
    tmp_path: Path,
) -> None:
    path = _rows(tmp_path)
    missing = invoke("deployments", "apply", str(path))
    if missing.exit_code == 1:  # the pool may exist already from another test in this session
        assert "Work pool 'sceneflow-pool' does not exist" in missing.stderr
        assert "prefect work-pool create sceneflow-pool --type process" in missing.stderr
    asyncio.run(_ensure_pool())

    first = invoke("deployments", "apply", str(path))
    assert first.exit_code == 0, first.output
    assert "created   generate-batch/nightly (row 2)" in first.stdout
    assert "created   process-inbox/drop-box (row 3)" in first.stdout
    before = asyncio.run(_deployments())
    nightly = before["generate-batch/nightly"]
    assert [(s.schedule.cron, s.schedule.timezone, s.active) for s in nightly.schedules] == [
        ("0 2 * * *", "Europe/Berlin", True)
    ]
    assert nightly.parameters["max_concurrency"] == 4
    assert nightly.work_pool_name == "sceneflow-pool"
    assert nightly.pull_steps == [{"sceneflow.app.deploy.worker_steps.use_checkout": {}}]
    assert before["process-inbox/drop-box"].schedules[0].active is False
    assert before["generate-batch/by-hand"].schedules == []

    second = invoke("deployments", "apply", str(path))
    assert second.exit_code == 0, second.output
    assert "0 created, 0 updated, 3 unchanged" in second.stdout
    after = asyncio.run(_deployments())
    for name, deployment in after.items():
        assert deployment.updated == before[name].updated, name
        assert [s.id for s in deployment.schedules] == [s.id for s in before[name].schedules]

    path.write_text(path.read_text().replace("Europe/Berlin,4", "Europe/Berlin,6"))
    third = invoke("deployments", "apply", str(path))
    assert third.exit_code == 0, third.output
    assert "updated   generate-batch/nightly (row 2) (changed: parameters)" in third.stdout
    assert "1 updated, 2 unchanged" in third.stdout
    assert asyncio.run(_deployments())["generate-batch/nightly"].parameters["max_concurrency"] == 6


async def _make_by_hand(name: str) -> None:
    """A deployment that did not come from the manifest, as `prefect deploy` makes them."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        flow_id = await client.create_flow_from_name("generate-batch")
        await client.create_deployment(
            flow_id=flow_id,
            name=name,
            entrypoint="flows/batch.py:generate_batch",
            tags=["sceneflow"],
        )


async def _names() -> set[str]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return {
            f"{(await client.read_flow(d.flow_id)).name}/{d.name}"
            for d in await client.read_deployments()
        }


@pytest.mark.usefixtures("prefect_harness")
def test_prune_deletes_only_what_the_manifest_made_and_no_longer_lists(tmp_path: Path) -> None:
    asyncio.run(_ensure_pool())
    asyncio.run(_make_by_hand("hand-made"))
    source = tmp_path / "prompts.csv"
    source.write_text("prompt\nA lantern\n")
    keep = f"keep-me,batch,{source},demo,local,,UTC,1,,true\n"
    both = keep + f"drop-me,batch,{source},demo,local,,UTC,1,,true\n"
    path = write(tmp_path, both)
    assert invoke("deployments", "apply", str(path)).exit_code == 0
    assert {"generate-batch/keep-me", "generate-batch/drop-me"} <= asyncio.run(_names())

    path.write_text(HEADER + keep)
    without = invoke("deployments", "apply", str(path))
    assert without.exit_code == 0, without.output
    assert "generate-batch/drop-me" in asyncio.run(_names())  # a plain apply never deletes

    pruned = invoke("deployments", "apply", str(path), "--prune")
    assert pruned.exit_code == 0, pruned.output
    assert "deleted   generate-batch/drop-me (no longer in schedules.csv)" in pruned.stdout
    assert "0 created, 0 updated, 1 unchanged" in pruned.stdout
    names = asyncio.run(_names())
    assert "generate-batch/drop-me" not in names
    assert {"generate-batch/keep-me", "generate-batch/hand-made"} <= names
