"""Drill: a batch over every remote provider under a seeded per-call fault mix, run in-process
under Prefect, then run again with the faults gone; and the files the runs left scanned for
every secret.

Per call of every emulator: 5% 500, 5% 503, 5% 429 with Retry-After, 2% replies slower than
the client's timeout (the job was created and paid; the answer comes too late), 1% malformed
JSON (on a submit: the job was created and paid, its reply is unreadable), and 3% of submits
fail asynchronously. Proves:
- every row reaches results.csv once, in a terminal state: COMPLETED with a verified file;
  FAILED with the provider's reason, for a job the provider failed; UNKNOWN only for a provider
  that cannot be asked, after a submit whose reply was lost, or for one that can, after
  MAX_SENDS sends in a row each lost its reply and was searched for in vain (the message names
  `sceneflow jobs resubmit` either way);
- the emulators count exactly one paid job per COMPLETED or FAILED row and never two;
- a re-run resolves every other UNKNOWN row of a provider that can be asked, pays nothing for
  rows already done, leaves the others UNKNOWN without sending them again;
- no stored credential, Vertex token or Runway signed URL is left in any file of the run.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import httpx
import pandas as pd
import pytest

import adapters.base
from flows.batch import generate_batch
from sceneflow.jobs.submit import MAX_SENDS
from sceneflow.media import verify_video
from sceneflow.settings import get_settings
from tests.support import drills
from tests.support.polling import fast_polling

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.timeout(1800)]

USER = "drill-mix"
MIX = {"500": 0.05, "503": 0.05, "429": 0.05, "slow": 0.02, "malformed": 0.01, "fail": 0.03}
CLIENT_TIMEOUT = 2.5
SLOW_DELAY = 4.0  # past the client's timeout
ROWS = drills.size(5, 30)  # per remote provider: 50 rows in CI, 300 in full
# What an engine error says for a submit whose reply it could not read or never got.
LOST_REPLY_STATUS = {500, 502, 504}


def _results(out: Path) -> dict[str, dict[str, str]]:
    frame = pd.read_csv(out / "results.csv", dtype=str, keep_default_na=False)
    ids = list(frame["id"])
    assert len(ids) == len(set(ids)), "a row appears twice in results.csv"
    return {row["id"]: row for row in frame.to_dict(orient="records")}


def _lost_submit_replies(job_id: str) -> int:
    """How many submits the attempt log shows whose answer was lost: an error reply that may
    follow a created job (500), a timeout, or an unreadable body."""
    return sum(
        attempt.operation == "submit"
        and attempt.outcome == "error"
        and (
            attempt.http_status in LOST_REPLY_STATUS
            or attempt.error_class == "AmbiguousSubmitError"
        )
        for attempt in drills.attempts_of(job_id)
    )


async def test_a_fault_mix_over_every_remote_provider_ends_every_row_right(
    tmp_path: Path, sceneflow_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast_polling(monkeypatch)
    monkeypatch.setattr(
        adapters.base.HttpAdapter, "timeout", httpx.Timeout(CLIENT_TIMEOUT, connect=CLIENT_TIMEOUT)
    )
    with drills.serve_fleet(latency=0.3) as fleet:
        for name, url in fleet.base_url_env().items():
            monkeypatch.setenv(name, url)
        get_settings.cache_clear()
        stored = drills.store_credentials(USER, fleet)
        for n, emu in enumerate(fleet.emulators.values()):
            emu.set_fault_rates(MIX, seed=1234 + n, slow_delay=SLOW_DELAY, retry_after=0.2)
        if not drills.FULL:
            # 50 submits draw about 1.5 async failures: make sure CI sees one of each kind of
            # provider (queued faults come before the rates).
            for key in ("runway", "replicate"):
                fleet.emulators[key].inject("submit", "fail")
        source = tmp_path / "mix.csv"
        source.write_text(drills.csv_text(dict.fromkeys(drills.REMOTE, ROWS)))
        out = tmp_path / "out"

        summary = await generate_batch(str(source), USER, output_dir=str(out), max_concurrency=4)

        results = _results(out)
        expected = {r: p for p in drills.REMOTE for r in drills.row_ids(p, ROWS)}
        assert set(results) == set(expected), "a row is missing from results.csv"
        paid = fleet.paid()
        outcome: Counter[tuple[str, str]] = Counter()
        waiting: set[str] = set()  # askable rows left UNKNOWN after MAX_SENDS lost replies
        for row_id, row in results.items():
            provider = expected[row_id]
            assert row["provider"] == provider
            status, error = row["status"], row["error"]
            emu = fleet.emulators[provider]
            jobs = drills.jobs_of_row(emu, row_id)
            outcome[(provider, status)] += 1
            assert paid[provider][row_id] <= 1, f"{row_id} was paid {paid[provider][row_id]}x"
            if status == "COMPLETED":
                assert len(jobs) == 1 and jobs[0].id in row["provider_job_id"], row
                assert not jobs[0].fail
                verify_video(row["output_path"])
                assert Path(row["output_path"]).parent == out
            elif status == "FAILED":
                assert len(jobs) == 1 and jobs[0].fail, (
                    f"{row_id} FAILED, not by its provider: {row}"
                )
                assert f"{provider} job" in error and "failed:" in error, error
                assert "no reason given" not in error, error
            elif status == "UNKNOWN":
                assert drills.RESUBMIT_HINT in error, error
                if provider in drills.ASKABLE:
                    # Searched and found unsent each time, but every one of its sends lost its
                    # reply: such a job waits for the user (submit.MAX_SENDS), never sent a
                    # fourth time on its own. 5% 500s make it one row in a few thousand.
                    assert f"sent {MAX_SENDS} times already, each reply lost" in error, (
                        f"{row_id}: {provider} can be asked, yet the row is UNKNOWN: {error}"
                    )
                    assert _lost_submit_replies(row["job_id"]) >= MAX_SENDS, error
                    assert not jobs, f"{row_id} is UNKNOWN though its provider has its job"
                    waiting.add(row_id)
                else:
                    lost = bool(jobs) and bool(jobs[0].extra.get("reply_lost"))
                    assert lost or _lost_submit_replies(row["job_id"]), (
                        f"{row_id} is UNKNOWN but no submit reply of it was lost: {error}"
                    )
            else:
                pytest.fail(f"{row_id} ended {status}: {error}")
        # Every job the emulators created belongs to exactly one row of the batch.
        for provider, emu in fleet.emulators.items():
            assert emu.submissions == sum(paid[provider].values()), provider
            assert set(paid[provider]) <= {r for r, p in expected.items() if p == provider}
        # A job whose submit reply was spoilt after it was paid is found again by lookup where
        # the provider can be asked: never UNKNOWN, never paid twice.
        for provider in drills.ASKABLE & set(drills.REMOTE):
            for job in fleet.emulators[provider].jobs.values():
                if job.extra.get("reply_lost"):
                    (row_id,) = drills.rows_of_job(job)
                    assert results[row_id]["status"] in ("COMPLETED", "FAILED"), results[row_id]
        assert summary.completed == sum(n for (_, s), n in outcome.items() if s == "COMPLETED")
        drawn: Counter[str] = Counter()
        for emu in fleet.emulators.values():
            drawn.update(kind for (_, kind) in emu.drawn.elements())
        print(f"\nfault mix: {dict(drawn)}; outcomes: {dict(sorted(outcome.items()))}")
        assert drawn["500"] and drawn["503"] and drawn["429"], "the mix drew too few faults"
        if drills.FULL:
            assert all(drawn[kind] for kind in MIX), f"the mix drew too few faults: {drawn}"
        assert outcome.total() > 0 and any(s == "FAILED" for (_, s) in outcome), outcome

        # Again, with the faults gone: UNKNOWN rows of askable providers resolve; FAILED rows
        # start a new generation (one new paid job each); nothing else is paid.
        for emu in fleet.emulators.values():
            emu.clear_fault_rates()
        await generate_batch(str(source), USER, output_dir=str(out), max_concurrency=4)
        again = _results(out)
        repaid = fleet.paid()
        for row_id, row in again.items():
            provider, before = expected[row_id], results[row_id]
            new_jobs = repaid[provider][row_id] - paid[provider][row_id]
            if before["status"] == "COMPLETED":
                assert row["status"] == "COMPLETED" and new_jobs == 0, row
                assert row["output_path"] == before["output_path"]
            elif before["status"] == "FAILED":
                assert row["status"] == "COMPLETED" and new_jobs == 1, row
            elif provider in drills.ASKABLE and row_id not in waiting:
                assert row["status"] == "COMPLETED", f"re-run left {row_id} {row['status']}: {row}"
                assert repaid[provider][row_id] == 1, row
            else:
                assert row["status"] == "UNKNOWN" and new_jobs == 0, row
                assert drills.RESUBMIT_HINT in row["error"], row["error"]

    # The secret scan: everything the runs left on disk, Prefect's home and database included.
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

    await _flush_prefect()
    prefect_db = Path(PREFECT_SERVER_DATABASE_CONNECTION_URL.value().split("///", 1)[1])

    secrets = drills.fleet_secrets(stored, fleet)
    assert any("vertex access token" in name for name in secrets)
    assert any("runway signed URL" in name for name in secrets)
    files = drills.scan_for_secrets(
        secrets, Path(os.environ["PREFECT_HOME"]), prefect_db.parent, tmp_path, sceneflow_env
    )
    assert prefect_db in files and any(p.name == "results.csv" for p in files)


async def _flush_prefect() -> None:
    """Logs and events reach Prefect's database from background workers; wait for them."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogHandler

    await APILogHandler.aflush()
    drained = EventsWorker.drain_all()
    if drained is not None and not isinstance(drained, tuple):
        await drained
