"""Drill: bad prompt CSVs and bad settings, through `sceneflow batch | generate` as a user types
them. Every case that cannot run exits 1 with one `Error: ...` line before any flow starts (the
flows are replaced by functions that fail the test) and stores no job row. Cases that can run
(a BOM, CRLF, multi-line or formula prompts, odd ids, a row too long) get through to the flow,
and their rows come out as the reader promises."""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlmodel import func, select
from typer.testing import CliRunner, Result

import adapters
from sceneflow import batches, db, preflight, store
from sceneflow.app.cli import app
from sceneflow.batches import BatchSummary, ResultRecord
from sceneflow.models import StandardVideoRequest
from sceneflow.settings import get_settings

HEADER = "id,prompt,aspect_ratio,motion_intensity"
runner = CliRunner()


def check(provider: str, request: StandardVideoRequest) -> list[str]:
    return adapters.get_adapter(provider).validate(request)


def capabilities(provider: str) -> Any:
    return adapters.get_adapter(provider).capabilities()


class Flows:
    """Stand-ins for the Prefect flows the CLI starts: `allowed` decides whether a call fails
    the test; `calls` records what the CLI passed."""

    def __init__(self) -> None:
        self.allowed = False
        self.calls: list[tuple[Any, ...]] = []

    async def generate_batch(self, source: str, user: str, *args: Any, **kwargs: Any) -> Any:
        if not self.allowed:
            pytest.fail("the batch flow ran for input that the pre-flight checks must refuse")
        self.calls.append((source, user, *args))
        return BatchSummary(
            batch_id="drill",
            total=0,
            completed=0,
            failed=0,
            invalid=0,
            results_csv="results.csv",
            output_dir="out",
            failures=[],
        )

    async def generate_video(self, *args: Any, **kwargs: Any) -> Any:
        pytest.fail("the generate flow ran for input that the pre-flight checks must refuse")


@pytest.fixture(autouse=True)
def flows(monkeypatch: pytest.MonkeyPatch) -> Flows:
    stand_in = Flows()
    monkeypatch.setattr("sceneflow.app.cli.run.generate_batch", stand_in.generate_batch)
    monkeypatch.setattr("sceneflow.app.cli.run.generate_video", stand_in.generate_video)
    return stand_in


def job_count() -> int:
    with db.session_scope() as session:
        return session.exec(select(func.count()).select_from(store.GenerationJob)).one()


def refused(result: Result) -> str:
    """The one error line, after checking the exit code, that it is alone, and that no job row
    was stored."""
    assert result.exit_code == 1, result.output
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith("Error: "), result.stderr
    # stdout says what was being checked, nothing more: no result, no traceback.
    assert all(p.startswith("Validating the rows of ") for p in result.stdout.splitlines())
    return line.removeprefix("Error: ")


def batch(source: Path | str, *args: str, output: Path | None = None) -> Result:
    out = ["--output", str(output)] if output else []
    return runner.invoke(app, ["batch", str(source), "--provider", "local", *out, *args])


def write(tmp_path: Path, content: str | bytes, name: str = "prompts.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def check_batch(source: Path, tmp_path: Path, provider: str = "local") -> Any:
    return preflight.check_batch(
        str(source),
        output_dir=str(tmp_path / "out"),
        default_provider=provider,
        user_id="default",
        provider_check=check,
        capabilities_for=capabilities,
    )


# --- CSVs that cannot run ----------------------------------------------------------------

BAD_CSVS = {
    "empty": (b"", "The prompt CSV {src} is empty: write a header row (prompt, aspect_ratio, "
              "motion_intensity, and any optional columns) and one row per video."),
    "header only": (HEADER + "\n", "The prompt CSV {src} has a header but no prompt rows: add "
                    "one row per video below the header."),
    "semicolons": ("id;prompt;aspect_ratio;motion_intensity\na;A cat, asleep;16:9;3\n",
                   "The prompt CSV {src} looks semicolon-delimited (its header is one column: "
                   "'id;prompt;aspect_ratio;motion_intensity'); save it with commas between the "
                   "columns."),
    "missing columns": ("id,prompt\na,A cat\nb,A dog\n",
                        "The CSV has no aspect_ratio, motion_intensity columns: every row needs "
                        "prompt, aspect_ratio and motion_intensity; the other columns are "
                        "optional."),
    "unknown column": ("prompt,aspect_ratio,motion_intensity,colour\nA cat,16:9,3,red\n",
                       "Unknown column(s) colour. Allowed columns: aspect_ratio, audio, duration, "
                       "fps, id, image_url, model, motion_intensity, negative_prompt, options, "
                       "prompt, provider, quality, resolution, seed, style."),
    "latin-1 byte": ((HEADER + "\na,A cat,16:9,3\nb,Caf\xe9 at dawn,16:9,3\n").encode("latin-1"),
                     "The prompt CSV {src} is not UTF-8: row 3 has the byte 0xe9, which UTF-8 "
                     "does not allow (Latin-1 or Windows-1252 text?); save it as UTF-8 CSV (in "
                     "Excel: CSV UTF-8) with a header row."),
    "NUL byte": (HEADER + "\na,A cat,16:9,3\nb,A d\x00og,16:9,3\n",
                 "The prompt CSV {src} has a NUL byte in row 3, so it is not CSV text; save it "
                 "as UTF-8 CSV (in Excel: CSV UTF-8) with a header row."),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_CSVS))
def test_a_csv_that_cannot_run_is_refused_before_any_flow(
    case: str, tmp_path: Path, database_url: str
) -> None:
    content, expected = BAD_CSVS[case]
    source = write(tmp_path, content)
    assert refused(batch(source, output=tmp_path / "out")) == expected.format(src=source)
    assert job_count() == 0


def test_a_missing_csv_is_refused(tmp_path: Path, database_url: str) -> None:
    missing = tmp_path / "nope.csv"
    assert refused(batch(missing)) == (
        f"Prompt CSV not found: {missing}. Pass an existing file or URL."
    )
    assert job_count() == 0


# --- CSVs that can run --------------------------------------------------------------------


def test_a_bom_crlf_and_multi_line_prompts_get_through(
    tmp_path: Path, database_url: str, flows: Flows
) -> None:
    text = HEADER + '\r\na,"A cat\r\nasleep on a mat",16:9,3\r\nb,"A ""quoted"" dog",1:1,2\r\n'
    source = write(tmp_path, b"\xef\xbb\xbf" + text.encode())
    flows.allowed = True
    result = batch(source, output=tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert [call[0] for call in flows.calls] == [str(source)]
    parsed = check_batch(source, tmp_path)
    assert parsed.problems == []
    assert [(r.row_number, r.row_id, r.request.prompt) for r in parsed.rows] == [
        (2, "a", "A cat\nasleep on a mat"),
        (3, "b", 'A "quoted" dog'),
    ]
    assert job_count() == 0  # the flow was a stand-in: the checks themselves stored nothing


def test_a_megabyte_prompt_is_a_problem_of_its_row(
    tmp_path: Path, database_url: str, flows: Flows
) -> None:
    source = write(tmp_path, f"{HEADER}\nbig,{'x' * 1_000_000},16:9,3\nok,A cat,16:9,3\n")
    flows.allowed = True
    assert batch(source, output=tmp_path / "out").exit_code == 0
    parsed = check_batch(source, tmp_path)
    assert [r.row_id for r in parsed.rows] == ["ok"]
    assert [(p.row_number, p.problems) for p in parsed.problems] == [
        (2, ["prompt: String should have at most 4000 characters"])
    ]


def test_formula_cells_are_allowed_in_and_neutralised_in_results_csv(
    tmp_path: Path, database_url: str
) -> None:
    lines = "".join(f"f{n},{c}HYPERLINK(1) cat,16:9,3\n" for n, c in enumerate("=+-@"))
    parsed = check_batch(write(tmp_path, HEADER + "\n" + lines), tmp_path)
    prompts_in = [r.request.prompt for r in parsed.rows]
    assert prompts_in == [f"{c}HYPERLINK(1) cat" for c in "=+-@"]
    records = [
        ResultRecord(id=r.row_id, row_number=r.row_number, prompt=r.request.prompt, status="X")
        for r in parsed.rows
    ]
    out = pd.read_csv(io.StringIO(batches.results_csv(records)), dtype=str)
    assert list(out["prompt"]) == [f"'{p}" for p in prompts_in]
    assert list(out["id"]) == ["f0", "f1", "f2", "f3"]


def test_duplicate_ids_and_ids_that_collide_once_sanitised(
    tmp_path: Path, database_url: str
) -> None:
    parsed = check_batch(
        write(tmp_path, f"{HEADER}\na/b,x,16:9,3\na_b,y,16:9,3\na.b,z,16:9,3\n"), tmp_path
    )
    assert [r.row_id for r in parsed.rows] == ["a/b", "a_b", "a.b"]
    assert parsed.problems == []
    twice = check_batch(write(tmp_path, f"{HEADER}\nsame,x,16:9,3\nsame,y,16:9,3\n"), tmp_path)
    assert [r.row_number for r in twice.rows] == [2]
    assert [p.message() for p in twice.problems] == [
        "row 3: id: 'same' is already used by row 2; ids must be unique"
    ]


def test_a_hundred_thousand_rows_are_only_validated(tmp_path: Path, database_url: str) -> None:
    # Validated only: a run would render 100,000 videos. No timing assertion (design.md §7).
    source = tmp_path / "big.csv"
    with source.open("w") as fh:
        fh.write(HEADER + "\n")
        fh.writelines(f"r{n},Scene number {n},16:9,{n % 10 + 1}\n" for n in range(100_000))
    parsed = check_batch(source, tmp_path)
    assert len(parsed.rows) == 100_000 and parsed.problems == []
    assert parsed.rows[-1].row_number == 100_001
    assert job_count() == 0


# --- settings that cannot run -------------------------------------------------------------


def test_an_output_that_is_a_file(tmp_path: Path, database_url: str) -> None:
    target = tmp_path / "out.mp4"
    target.write_text("x")
    expected = (
        f"The output folder {target} is a file, not a folder: pass a folder you can write to for "
        "the videos and results.csv (it is created if missing)."
    )
    source = write(tmp_path, f"{HEADER}\na,A cat,16:9,3\n")
    assert refused(batch(source, output=target)) == expected
    assert refused(runner.invoke(app, ["generate", "A cat", "--output", str(target)])) == expected
    assert job_count() == 0


def test_scene_flow_home_that_is_a_file(tmp_path: Path, sceneflow_env: Path) -> None:
    sceneflow_env.write_text("x")  # no DATABASE_URL: the database would live in SCENEFLOW_HOME
    expected = (
        f"SCENEFLOW_HOME {sceneflow_env} is a file, not a folder: point SCENEFLOW_HOME at a "
        "folder you can write to (it is created if missing)."
    )
    source = write(tmp_path, f"{HEADER}\na,A cat,16:9,3\n")
    assert refused(batch(source, output=tmp_path / "out")) == expected
    assert refused(runner.invoke(app, ["generate", "A cat", "-o", str(tmp_path)])) == expected
    assert sceneflow_env.read_text() == "x"
    assert not (tmp_path / "out").exists()


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Mode bits, or (as root, who ignores them) the immutable attribute; else skip."""
    mode = path.stat().st_mode
    path.chmod(mode & ~0o222)
    immutable = False
    try:
        try:
            with path.open("ab"):
                writable = True
        except OSError:
            writable = False
        if writable:
            chattr = shutil.which("chattr")
            if chattr is None or subprocess.run([chattr, "+i", str(path)]).returncode != 0:
                pytest.skip("cannot make a file read-only here (root without chattr +i)")
            immutable = True
        yield
    finally:
        if immutable:
            subprocess.run([str(shutil.which("chattr")), "-i", str(path)], check=True)
        path.chmod(mode)


@pytest.fixture
def sqlite_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    file = tmp_path / "data" / "jobs.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{file}")
    get_settings.cache_clear()
    db.upgrade()
    db.dispose_engines()  # as a new CLI process would, open it afresh
    yield file
    db.dispose_engines()


def test_a_read_only_database_file(tmp_path: Path, sqlite_file: Path) -> None:
    source = write(tmp_path, f"{HEADER}\na,A cat,16:9,3\n")
    with read_only(sqlite_file):
        message = refused(batch(source, output=tmp_path / "out"))
    assert message == (
        f"The SQLite database {sqlite_file} is read-only (attempt to write a readonly database): "
        "make the file writable by this user, or set DATABASE_URL to a database you can write to."
    )
    db.dispose_engines()
    assert job_count() == 0


def test_a_database_opened_read_only(
    tmp_path: Path, sqlite_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same refusal without file permissions: SQLite's own read-only mode.
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///file:{sqlite_file}?mode=ro&uri=true")
    get_settings.cache_clear()
    source = write(tmp_path, f"{HEADER}\na,A cat,16:9,3\n")
    assert refused(batch(source, output=tmp_path / "out")).startswith(
        f"The SQLite database {sqlite_file} is read-only (attempt to write a readonly database)"
    )


def test_a_missing_encryption_key_with_a_provider_that_needs_keys(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch, flows: Flows
) -> None:
    monkeypatch.delenv("ENCRYPTION_KEY")
    get_settings.cache_clear()
    key = (
        "ENCRYPTION_KEY is not set: it must be base64 of 32 bytes; make one with `sceneflow keys "
        "generate` and export it."
    )
    source = write(tmp_path, f"{HEADER},duration\na,A cat,16:9,3,5\nb,A dog,16:9,3,5\n")
    result = runner.invoke(app, ["batch", str(source), "-p", "runway", "-o", str(tmp_path)])
    assert refused(result) == f"{key} (runway is used by row 2 and 1 more)"
    result = runner.invoke(app, ["generate", "A cat", "-p", "runway", "-o", str(tmp_path)])
    assert refused(result) == key
    assert job_count() == 0
    # The local provider needs no key, so the same settings let a local batch through.
    flows.allowed = True
    assert batch(source, output=tmp_path / "out").exit_code == 0


def test_missing_credentials_for_a_provider_in_the_csv(tmp_path: Path, database_url: str) -> None:
    source = write(
        tmp_path,
        f"{HEADER},duration,provider\na,A cat,16:9,3,5,local\nb,A dog,16:9,3,5,runway\n",
    )
    assert refused(batch(source, "--user", "bob", output=tmp_path / "out")) == (
        "No credentials for provider 'runway' and user 'bob': run `sceneflow creds set bob "
        "runway` (runway is used by row 3)"
    )
    assert job_count() == 0
