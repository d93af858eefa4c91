"""The prompt CSV reader: what makes the whole file unusable is one ConfigError line naming the
file, column or row; what is wrong with one row is that row's problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from sceneflow import prompts
from sceneflow.errors import ConfigError, RequestValidationError
from sceneflow.models import StandardVideoRequest

HEADER = "id,prompt,aspect_ratio,motion_intensity"


def no_limits(provider: str, request: StandardVideoRequest) -> list[str]:
    return []


def write(tmp_path: Path, content: str | bytes, name: str = "p.csv") -> str:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return str(path)


def read_error(source: str) -> str:
    with pytest.raises(ConfigError) as info:
        prompts.parse_prompts(
            prompts.read_csv_text(source), default_provider="local", provider_check=no_limits
        )
    message = str(info.value)
    assert "\n" not in message
    return message


def parse(source: str) -> prompts.PromptBatch:
    return prompts.parse_prompts(
        prompts.read_csv_text(source), default_provider="local", provider_check=no_limits
    )


def test_required_columns_come_from_the_request_model() -> None:
    assert prompts.REQUIRED_COLUMNS == ("prompt", "aspect_ratio", "motion_intensity")


@pytest.mark.parametrize("content", ["", "\n\n", "   \r\n"], ids=["empty", "newlines", "blank"])
def test_an_empty_file_is_an_error(tmp_path: Path, content: str) -> None:
    source = write(tmp_path, content)
    assert read_error(source) == (
        f"The prompt CSV {source} is empty: write a header row (prompt, aspect_ratio, "
        "motion_intensity, and any optional columns) and one row per video."
    )


def test_a_header_without_rows_is_an_error(tmp_path: Path) -> None:
    source = write(tmp_path, HEADER + "\n")
    assert read_error(source) == (
        f"The prompt CSV {source} has a header but no prompt rows: add one row per video below "
        "the header."
    )


def test_missing_required_columns_are_named_once_at_header_level(tmp_path: Path) -> None:
    source = write(tmp_path, "id,prompt\n" + "".join(f"r{n},a cat\n" for n in range(50)))
    message = read_error(source)
    assert message == (
        "The CSV has no aspect_ratio, motion_intensity columns: every row needs prompt, "
        "aspect_ratio and motion_intensity; the other columns are optional."
    )


def test_unknown_and_missing_columns_are_one_line(tmp_path: Path) -> None:
    source = write(tmp_path, "prompt,colour\nA cat,red\n")
    message = read_error(source)
    assert message.startswith("Unknown column(s) colour. Allowed columns: aspect_ratio, ")
    assert message.endswith(
        " The CSV has no aspect_ratio, motion_intensity columns: every row needs prompt, "
        "aspect_ratio and motion_intensity; the other columns are optional."
    )


def test_a_single_missing_column_is_singular(tmp_path: Path) -> None:
    source = write(tmp_path, "prompt,aspect_ratio\nA cat,16:9\n")
    assert read_error(source).startswith("The CSV has no motion_intensity column: ")


@pytest.mark.parametrize(("sep", "name"), [(";", "semicolon"), ("\t", "tab"), ("|", "pipe")])
def test_another_delimiter_is_named(tmp_path: Path, sep: str, name: str) -> None:
    # A comma inside a prompt would otherwise surface as a confusing field-count error.
    header = sep.join(["prompt", "aspect_ratio", "motion_intensity"])
    source = write(tmp_path, f"{header}\nA cat, asleep{sep}16:9{sep}3\n")
    assert read_error(source) == (
        f"The prompt CSV {source} looks {name}-delimited (its header is one column: "
        f"{header!r}); save it with commas between the columns."
    )


def test_a_column_named_twice_is_an_error(tmp_path: Path) -> None:
    source = write(tmp_path, "prompt,aspect_ratio,motion_intensity,Prompt\na,16:9,3,b\n")
    assert read_error(source) == (
        f"The prompt CSV {source} names the column(s) prompt more than once in its header; "
        "keep one of each."
    )


def test_a_latin1_byte_is_reported_by_its_row_not_its_offset(tmp_path: Path) -> None:
    text = HEADER + '\nr1,"a prompt\nover two lines",16:9,3\nr2,caf\xe9 at dawn,16:9,3\n'
    source = write(tmp_path, text.encode("latin-1"))
    assert read_error(source) == (
        f"The prompt CSV {source} is not UTF-8: row 3 has the byte 0xe9, which UTF-8 does not "
        "allow (Latin-1 or Windows-1252 text?); save it as UTF-8 CSV (in Excel: CSV UTF-8) "
        "with a header row."
    )


def test_a_nul_byte_is_reported_by_its_row(tmp_path: Path) -> None:
    source = write(tmp_path, HEADER + "\nr1,a,16:9,3\nr2,b\x00c,16:9,3\n")
    assert read_error(source) == (
        f"The prompt CSV {source} has a NUL byte in row 3, so it is not CSV text; save it as "
        "UTF-8 CSV (in Excel: CSV UTF-8) with a header row."
    )


def test_utf16_is_named(tmp_path: Path) -> None:
    source = write(tmp_path, (HEADER + "\nr1,a,16:9,3\n").encode("utf-16"))
    assert read_error(source) == (
        f"The prompt CSV {source} is UTF-16 text; save it as UTF-8 CSV (in Excel: CSV UTF-8) "
        "with a header row."
    )


def test_a_row_with_too_many_cells_is_named_by_row(tmp_path: Path) -> None:
    source = write(tmp_path, HEADER + '\nr1,"two\nlines",16:9,3\nr2,a, b,16:9,3\n')
    assert read_error(source) == (
        f"Cannot read {source} as CSV: row 3 has 5 cells but the header has 4; put quotes "
        "around cells that contain commas, or save it as UTF-8 CSV (in Excel: CSV UTF-8) with "
        "a header row."
    )


def test_a_missing_file_and_a_folder(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.csv")
    assert read_error(missing) == f"Prompt CSV not found: {missing}. Pass an existing file or URL."
    assert read_error(str(tmp_path)) == f"The prompt CSV {tmp_path} is a folder; pass a CSV file."


def test_bom_crlf_and_multi_line_prompts_are_accepted(tmp_path: Path) -> None:
    text = HEADER + '\r\nr1,"first line\r\nsecond line",16:9,3\r\nr2,"say ""hi""",1:1,2\r\n'
    batch = parse(write(tmp_path, b"\xef\xbb\xbf" + text.encode()))
    assert batch.problems == []
    assert [r.row_id for r in batch.rows] == ["r1", "r2"]
    assert [r.row_number for r in batch.rows] == [2, 3]
    assert batch.rows[0].request.prompt == "first line\nsecond line"
    assert batch.rows[1].request.prompt == 'say "hi"'


def test_a_bom_is_not_part_of_the_first_column_name(tmp_path: Path) -> None:
    frame = prompts.read_csv_text(write(tmp_path, b"\xef\xbb\xbfprompt,aspect_ratio\na,1:1\n"))
    assert list(frame.columns) == ["prompt", "aspect_ratio"]


def test_a_megabyte_prompt_is_a_problem_of_its_row_only(tmp_path: Path) -> None:
    huge = "x" * 1_000_000
    batch = parse(write(tmp_path, f"{HEADER}\nbig,{huge},16:9,3\nok,a cat,16:9,3\n"))
    assert [r.row_id for r in batch.rows] == ["ok"]
    (problem,) = batch.problems
    assert problem.row_number == 2
    assert problem.problems == ["prompt: String should have at most 4000 characters"]


def test_ids_that_collide_once_sanitised_are_three_rows(tmp_path: Path) -> None:
    batch = parse(write(tmp_path, f"{HEADER}\na/b,x,16:9,3\na_b,y,16:9,3\na.b,z,16:9,3\n"))
    assert [r.row_id for r in batch.rows] == ["a/b", "a_b", "a.b"]
    assert batch.problems == []


def test_a_duplicate_id_is_a_problem_of_the_later_row(tmp_path: Path) -> None:
    batch = parse(write(tmp_path, f"{HEADER}\nsame,x,16:9,3\nsame,y,16:9,3\n"))
    assert [r.row_number for r in batch.rows] == [2]
    assert batch.problems[0].message() == (
        "row 3: id: 'same' is already used by row 2; ids must be unique"
    )


def test_formula_cells_are_read_as_plain_prompts(tmp_path: Path) -> None:
    lines = "".join(f"f{n},{p}1+1 cat,16:9,3\n" for n, p in enumerate("=+-@"))
    batch = parse(write(tmp_path, HEADER + "\n" + lines))
    assert [r.request.prompt for r in batch.rows] == [
        "=1+1 cat",
        "+1+1 cat",
        "-1+1 cat",
        "@1+1 cat",
    ]


def test_provider_problems_stay_with_their_row(tmp_path: Path) -> None:
    def picky(provider: str, request: StandardVideoRequest) -> list[str]:
        if request.aspect_ratio != "16:9":
            raise RequestValidationError(["aspect_ratio: only 16:9"], provider=provider)
        return ["motion_intensity: sent as a prompt hint"]

    source = write(tmp_path, f"{HEADER}\na,x,16:9,3\nb,y,1:1,3\n")
    batch = prompts.parse_prompts(
        prompts.read_csv_text(source), default_provider="runway", provider_check=picky
    )
    assert [(r.row_id, r.warnings) for r in batch.rows] == [
        ("a", ["motion_intensity: sent as a prompt hint"])
    ]
    assert batch.problems[0].message() == "row 3: aspect_ratio: only 16:9"


# -- audio and options columns, strict -----------------------------------------------------------


def test_the_audio_column_takes_switch_words_and_empty_for_the_default(tmp_path: Path) -> None:
    rows = "\n".join(
        f"r{i},fox,16:9,5,{cell}"
        for i, cell in enumerate(["on", "OFF", "true", "False", "yes", "no", "1", "0", ""])
    )
    batch = parse(write(tmp_path, f"{HEADER},audio\n{rows}\n"))
    assert batch.problems == []
    assert [r.request.audio for r in batch.rows] == [
        True, False, True, False, True, False, True, False, None,
    ]  # fmt: skip


def test_a_bad_audio_cell_names_the_column_its_row_and_the_allowed_words(tmp_path: Path) -> None:
    batch = parse(write(tmp_path, f"{HEADER},audio\nr1,fox,16:9,5,on\nr2,fox,16:9,5,loud\n"))
    assert [p.message() for p in batch.problems] == [
        "row 3: audio: 'loud' is not a switch; allowed: on, off, true, false, yes, no, 1, 0, "
        "or empty for the provider's default"
    ]
    assert [r.row_id for r in batch.rows] == ["r1"]


def test_the_options_column_is_a_json_object(tmp_path: Path) -> None:
    content = (
        f"{HEADER},options\n"
        'r1,fox,16:9,5,"{""loop"": true, ""mode"": ""pro""}"\n'
        "r2,fox,16:9,5,\n"
        'r3,fox,16:9,5,"{loop: true}"\n'
        'r4,fox,16:9,5,"[1, 2]"\n'
    )
    batch = parse(write(tmp_path, content))
    assert [(r.row_id, r.request.options) for r in batch.rows] == [
        ("r1", {"loop": True, "mode": "pro"}),
        ("r2", {}),
    ]
    assert [p.message() for p in batch.problems] == [
        "row 4: options: not valid JSON (Expecting property name enclosed in double quotes at "
        'character 2); write a JSON object such as {"loop": true} (in a CSV cell: '
        '"{""loop"": true}", quotes doubled)',
        "row 5: options: must be a JSON object of option names and values, not a JSON list; "
        'for example {"loop": true} (in a CSV cell: "{""loop"": true}", quotes doubled)',
    ]


def test_strict_makes_a_rows_warnings_its_problems_but_for_required_fields(
    tmp_path: Path,
) -> None:
    def seedless(provider: str, request: StandardVideoRequest) -> list[str]:
        warnings = ["motion_intensity: p has no equivalent setting; not sent"]
        if request.seed is not None:
            warnings.append("seed: p has no equivalent setting; not sent")
        return warnings

    source = write(tmp_path, f"{HEADER},seed\nr1,fox,16:9,5,\nr2,fox,16:9,5,7\n")
    frame = prompts.read_csv_text(source)
    lenient = prompts.parse_prompts(frame, default_provider="p", provider_check=seedless)
    assert len(lenient.rows) == 2 and lenient.rows[1].warnings[1].startswith("seed: ")
    strict = prompts.parse_prompts(
        prompts.read_csv_text(source), default_provider="p", provider_check=seedless, strict=True
    )
    assert [r.row_id for r in strict.rows] == ["r1"]
    assert strict.rows[0].warnings == ["motion_intensity: p has no equivalent setting; not sent"]
    (problem,) = strict.problems
    assert problem.row_number == 3
    assert problem.problems == [
        "seed: p has no equivalent setting; not sent [strict: refused before anything is sent; "
        "leave the field out or change it, choose a provider or model that takes it, or turn "
        "strict off to send the request without it]"
    ]


# -- occurrences ---------------------------------------------------------------------------------


def test_a_rows_occurrence_counts_the_earlier_valid_rows_with_its_provider_and_request(
    tmp_path: Path,
) -> None:
    content = (
        "provider,prompt,aspect_ratio,motion_intensity,duration\n"
        "p,fox,16:9,3,\n"  # 0
        "p,fox,16:9,3,\n"  # 1
        "p,fox,1:1,3,\n"  # another request: 0
        "p, fox ,16:9,3,5.0\n"  # the same request once read (5.0 is the default): 2
        "p,fox,16:9,0,\n"  # invalid: not counted
        "q,fox,16:9,3,\n"  # another provider: 0
        "p,cat,16:9,3,\n"  # another prompt: 0
        "p,fox,16:9,3,\n"  # 3
        "q,fox,16:9,3,\n"  # 1
        "p,fox,1:1,3,\n"  # 1
    )
    batch = parse(write(tmp_path, content))
    assert [p.row_number for p in batch.problems] == [6]
    assert [(r.row_number, r.occurrence) for r in batch.rows] == [
        (2, 0), (3, 1), (4, 0), (5, 2), (7, 0), (8, 0), (9, 3), (10, 1), (11, 1),
    ]  # fmt: skip


def test_many_rows_with_one_prompt_are_counted_by_their_request(tmp_path: Path) -> None:
    rows = "".join(f"same prompt,16:9,{1 + n % 2}\n" for n in range(20_000))
    batch = parse(write(tmp_path, "prompt,aspect_ratio,motion_intensity\n" + rows))
    assert [r.occurrence for r in batch.rows] == [n // 2 for n in range(20_000)]
