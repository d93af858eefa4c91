"""Drill: the message of a row left UNKNOWN stays one readable sentence however often the batch
is run again (it names `sceneflow jobs resubmit` once, and does not grow)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from flows.batch import generate_batch
from sceneflow.settings import get_settings
from tests.support import drills
from tests.support.polling import fast_polling

pytestmark = pytest.mark.usefixtures("prefect_harness")

USER = "drill-unknown"


async def test_an_unknown_rows_message_does_not_grow_with_reruns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast_polling(monkeypatch)
    with drills.serve_fleet(("runway",)) as fleet:
        for name, url in fleet.base_url_env().items():
            monkeypatch.setenv(name, url)
        get_settings.cache_clear()
        drills.store_credentials(USER, fleet)
        # The job is created and paid; its reply is unreadable.
        fleet.emulators["runway"].set_fault_rates({"malformed": 1.0}, ops=["submit"], seed=1)
        source, out = tmp_path / "one.csv", tmp_path / "out"
        source.write_text(drills.csv_text({"runway": 1}))
        errors = []
        for _ in range(3):
            await generate_batch(str(source), USER, output_dir=str(out))
            frame = pd.read_csv(out / "results.csv", dtype=str, keep_default_na=False)
            (row,) = frame.to_dict(orient="records")
            assert row["status"] == "UNKNOWN"
            errors.append(row["error"])
            fleet.emulators["runway"].clear_fault_rates()
        assert fleet.emulators["runway"].submissions == 1
    for error in errors:
        assert error.count(drills.RESUBMIT_HINT) == 1, error
    assert len(errors[2]) == len(errors[0]), errors
