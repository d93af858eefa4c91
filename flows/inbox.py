"""process_inbox: every new CSV dropped into a folder becomes one batch, exactly once."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_table_artifact
from pydantic import BaseModel

from adapters import Provider
from flows.batch import generate_batch
from sceneflow import inbox, storage
from sceneflow.errors import SceneFlowError

# A claim this old was most likely left by a run that crashed; the log says how to retry it.
_STUCK_AFTER_SECONDS = 6 * 3600


class InboxFile(BaseModel):
    name: str
    outcome: Literal["done", "failed"]
    folder: str
    completed: int = 0
    failed: int = 0
    invalid: int = 0
    error: str | None = None


class InboxSummary(BaseModel):
    inbox_dir: str
    files: list[InboxFile]


@flow(name="process-inbox", flow_run_name="process-inbox[{user_id}]")
async def process_inbox(
    inbox_dir: str = ".sceneflow/inbox",
    user_id: str = "default",
    provider: Provider = Provider.LOCAL,
    output_dir: str = "outputs/inbox",
    max_concurrency: int = 4,
    deadline_seconds: float | None = None,
    settle_seconds: float = 5,
) -> InboxSummary:
    """Run every CSV waiting in the inbox as a batch, then move it to done/ or failed/.

    Args:
        inbox_dir: The folder users drop prompt CSVs into (a local or network filesystem).
        user_id: Whose stored credentials to use.
        provider: Default provider for rows without a provider column.
        output_dir: Folder or fsspec URL; each CSV's videos go to a subfolder named by its claim.
        max_concurrency: Jobs in flight at once, per provider.
        deadline_seconds: Give up on a job (and cancel it) once it has run this many seconds.
        settle_seconds: Leave files changed more recently than this for the next run.
    """
    logger = get_run_logger()
    folder = Path(inbox_dir).expanduser().resolve()
    inbox.prepare(folder)
    for path in inbox.stuck(folder, _STUCK_AFTER_SECONDS):
        logger.warning(
            "%s has been in processing/ for hours. If no run is working on it, move it back "
            "into the inbox: rows already done are reused, not paid for again.",
            path,
        )
    files: list[InboxFile] = []
    for path in inbox.pending(folder, settle_seconds):
        claim = inbox.claim(path)
        if claim is None:
            logger.info("%s was claimed by another run", path.name)
            continue
        files.append(
            await _process(
                claim,
                user_id=user_id,
                provider=provider,
                output_dir=f"{output_dir.rstrip('/')}/{claim.key}",
                max_concurrency=max_concurrency,
                deadline_seconds=deadline_seconds,
            )
        )
    if files:
        await acreate_table_artifact(
            table=[f.model_dump(exclude={"error"}) for f in files],
            key="inbox-files",
            description=f"CSVs processed from {folder}",
        )
    logger.info("processed %d CSV(s) from %s", len(files), folder)
    return InboxSummary(inbox_dir=str(folder), files=files)


async def _process(
    claim: inbox.Claim,
    *,
    user_id: str,
    provider: Provider,
    output_dir: str,
    max_concurrency: int,
    deadline_seconds: float | None,
) -> InboxFile:
    logger = get_run_logger()
    try:
        summary = await generate_batch(
            csv_path=str(claim.path),
            user_id=user_id,
            provider=provider,
            output_dir=output_dir,
            max_concurrency=max_concurrency,
            deadline_seconds=deadline_seconds,
        )
    except SceneFlowError as e:
        explanation = f"{claim.name} could not be processed: {e}\n"
        where = inbox.file_claim(claim, "failed", {"error.txt": explanation})
        logger.error("%s moved to %s: %s", claim.name, where, e)
        return InboxFile(name=claim.name, outcome="failed", folder=str(where), error=str(e))
    except Exception as e:
        # Not a known failure, so the run fails too; the CSV still leaves processing/.
        explanation = f"{claim.name} hit an unexpected error: {type(e).__name__}: {e}\n"
        inbox.file_claim(claim, "failed", {"error.txt": explanation})
        raise
    attachments = {"results.csv": storage.read_text(summary.results_csv)}
    if summary.failures:
        attachments["error.txt"] = (
            f"{len(summary.failures)} of {summary.total} rows did not complete; details in "
            "results.csv.\n" + "\n".join(summary.failures) + "\n"
        )
    outcome: Literal["done", "failed"] = "failed" if summary.failures else "done"
    where = inbox.file_claim(claim, outcome, attachments)
    logger.info("%s moved to %s", claim.name, where)
    return InboxFile(
        name=claim.name,
        outcome=outcome,
        folder=str(where),
        completed=summary.completed,
        failed=summary.failed,
        invalid=summary.invalid,
        error=attachments.get("error.txt"),
    )
