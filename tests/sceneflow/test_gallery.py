"""The gallery page: hostile text stays text, every row has its card, links are relative inside
the output folder, costs and the summary read right, and the page needs nothing from outside."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pytest

from sceneflow import gallery, storage
from sceneflow.batches import ResultRecord
from sceneflow.gallery import format_cost, gallery_paths, media_source, render_gallery

HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "' onmouseover='alert(1)",
    "</textarea></style></script><svg onload=alert(1)>",
    "&lt;already escaped&gt; & <b>bold</b>",
]


class Page(HTMLParser):
    """Every element with its attributes, and the text inside each element with a class."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.scripts: list[str] = []
        self.text_by_class: dict[str, list[str]] = {}
        self._open: list[tuple[str, str | None]] = []
        self._in_script = False
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        self.elements.append((tag, values))
        self._in_script = tag == "script"
        if tag not in ("img", "meta", "br", "input"):
            self._open.append((tag, values.get("class")))

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False
        while self._open:
            if self._open.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)
        elif self._open and self._open[-1][1]:
            for cls in (self._open[-1][1] or "").split():
                self.text_by_class.setdefault(cls, []).append(data)

    def all(self, tag: str) -> list[dict[str, str]]:
        return [attrs for t, attrs in self.elements if t == tag]


def rec(row: int, status: str = "COMPLETED", **fields: object) -> ResultRecord:
    return ResultRecord.model_validate({"row_number": row, "status": status, **fields})


def test_hostile_prompts_ids_errors_and_names_render_as_text(tmp_path: Path) -> None:
    records = [
        rec(
            2 + i,
            "FAILED",
            prompt=text,
            id=text,
            error=text,
            provider=text,
            model=text,
            warnings=text,
            output_path=str(tmp_path / "v.mp4"),
            poster=str(tmp_path / "v.jpg"),
        )
        for i, text in enumerate(HOSTILE)
    ]
    html = render_gallery(records, title=HOSTILE[0], page_dir=str(tmp_path))
    page = Page(html)

    # The only script is the page's own, the only images are the posters, and no element
    # carries an event-handler attribute.
    assert page.scripts == [gallery._SCRIPT]
    assert [attrs["src"] for attrs in page.all("img")] == ["v.jpg"] * len(HOSTILE)
    assert not page.all("svg") and not page.all("b") and not page.all("textarea")
    handlers = [(t, k) for t, attrs in page.elements for k in attrs if k.startswith("on")]
    assert handlers == []
    # Each hostile string comes back, decoded, as the text and attribute value it was.
    for cls in ("prompt", "row-id", "error", "provider", "model", "warnings"):
        assert page.text_by_class[cls] == HOSTILE, cls
    assert [a["title"] for a in page.all("p") if a.get("class") == "prompt"] == HOSTILE
    cards = page.all("article")
    assert [c["data-provider"] for c in cards] == HOSTILE
    assert [c["id"] for c in cards] == [f"row-{2 + i}" for i in range(len(HOSTILE))]
    assert page.text_by_class.get("summary") is not None
    assert re.search(r"<title>&lt;script&gt;alert\(1\)&lt;/script&gt;</title>", html)


def test_a_hostile_status_is_text_and_gets_no_class_of_its_own() -> None:
    page = Page(render_gallery([rec(2, '"><script>x()</script>')], title="t"))

    assert page.scripts == [gallery._SCRIPT]
    card = page.all("article")[0]
    assert card["data-status"] == '"><script>x()</script>'
    assert card["class"] == "card s-other"


def test_every_row_has_a_card_in_row_order_with_its_details(tmp_path: Path) -> None:
    records = [
        rec(4, "INVALID", prompt="no provider", error="duration: must be at most 10"),
        rec(
            2,
            prompt="A red kite",
            id="kite",
            provider="runway",
            model="gen4.5",
            duration=5.0,
            cost=25,
            output_path=str(tmp_path / "kite.mp4"),
            poster=str(tmp_path / "kite.jpg"),
        ),
        rec(3, "FAILED", prompt="A boat", provider="luma", model="ray-2", error="moderation"),
        rec(5, "COMPLETED", prompt="done, with a stale error", error="should not show"),
    ]
    html = render_gallery(records, title="Batch", page_dir=str(tmp_path))
    page = Page(html)

    cards = page.all("article")
    assert [c["data-row"] for c in cards] == ["2", "3", "4", "5"]
    assert [c["data-status"] for c in cards] == ["COMPLETED", "FAILED", "INVALID", "COMPLETED"]
    assert page.text_by_class["prompt"] == [
        "A red kite",
        "A boat",
        "no provider",
        "done, with a stale error",
    ]
    assert page.text_by_class["error"] == ["moderation", "duration: must be at most 10"]
    assert page.text_by_class["model"] == ["gen4.5", "ray-2"]
    assert "<dt>Duration</dt><dd>5.0 s</dd>" in html
    (video,) = page.all("video")
    assert video["src"] == "kite.mp4" and video["poster"] == "kite.jpg"
    assert {"muted", "loop", "playsinline"} <= set(video)
    assert page.text_by_class["no-media"] == ["no video"] * 3
    assert [a["href"] for a in page.all("a")] == ["results.csv", "kite.mp4"]


def test_links_are_relative_inside_the_output_folder_and_quoted(tmp_path: Path) -> None:
    out = tmp_path / "out"
    inside = str(out / "sub dir" / "a#1?.mp4")

    assert media_source(str(out / "kite.mp4"), str(out)) == "kite.mp4"
    assert media_source(inside, str(out)) == "sub%20dir/a%231%3F.mp4"
    assert media_source(f"file://{out}/kite.mp4", f"file://{out}") == "kite.mp4"
    assert media_source(str(out / "kite.mp4"), str(out) + "/") == "kite.mp4"
    # Outside the folder: the absolute path, quoted, with no file:// in front.
    elsewhere = tmp_path / "other" / 'x "y".mp4'
    assert media_source(str(elsewhere), str(out)) == quote_path(elsewhere)
    assert media_source(f"file://{elsewhere}", str(out)) == quote_path(elsewhere)
    assert media_source(str(tmp_path / "outside.mp4"), str(out)) == quote_path(
        tmp_path / "outside.mp4"
    )
    # No folder known: the path as given.
    assert media_source("clips/a b.mp4") == "clips/a%20b.mp4"
    # A path that starts with "//" would be another host to a browser; it stays a path.
    assert media_source("//evil.example/x.mp4") == "/evil.example/x.mp4"
    assert media_source("//evil.example/x.mp4", str(out)) == "/evil.example/x.mp4"
    assert media_source(None, str(out)) is None
    assert media_source("", str(out)) is None


def quote_path(path: Path) -> str:
    return quote(path.resolve().as_posix(), safe="/")


def test_object_store_and_http_urls_are_kept_and_script_urls_defused() -> None:
    assert media_source("s3://bucket/batch/kite.mp4", "/local/out") == "s3://bucket/batch/kite.mp4"
    assert media_source("https://cdn.example/v.mp4?sig=a&b=1", None) == (
        "https://cdn.example/v.mp4?sig=a&b=1"
    )
    assert (
        media_source('https://cdn.example/a b"<>.mp4') == "https://cdn.example/a%20b%22%3C%3E.mp4"
    )
    # Inside an object-store output folder, links are relative too.
    assert media_source("s3://bucket/batch/kite.mp4", "s3://bucket/batch") == "kite.mp4"
    assert media_source("s3://bucket/other/kite.mp4", "s3://bucket/batch/") == (
        "s3://bucket/other/kite.mp4"
    )
    # A URL-looking location with another scheme becomes a relative file name, never a script,
    # and so does an object named like one inside an object-store folder.
    for hostile in ("javascript://%0aalert(1)", "javascript:alert(1)", "data://text/html,x"):
        source = media_source(hostile, None)
        assert source is not None and ":" not in source
    assert media_source("s3://b/out/javascript:alert(1)", "s3://b/out") == (
        "javascript%3Aalert%281%29"
    )


def test_the_href_and_src_attributes_are_escaped(tmp_path: Path) -> None:
    html = render_gallery(
        [rec(2, output_path="https://cdn.example/v.mp4?a=1&b=2", poster='/x/"><b>.jpg')],
        title="t",
        results_csv_name='results "1".csv',
    )
    page = Page(html)

    assert page.all("video")[0]["src"] == "https://cdn.example/v.mp4?a=1&b=2"
    assert 'src="https://cdn.example/v.mp4?a=1&amp;b=2"' in html
    assert page.all("img")[0]["src"] == "/x/%22%3E%3Cb%3E.jpg"
    assert page.all("a")[0]["href"] == "results%20%221%22.csv"
    assert not page.all("b")


@pytest.mark.parametrize(
    ("cost", "text"),
    [
        (25.0, "25"),
        (25, "25"),
        (0.125, "0.125"),
        (0.1 + 0.2, "0.3"),
        (1234.5, "1,234.5"),
        (0.0, "0"),
        (None, None),
        (float("nan"), None),
    ],
)
def test_cost_formatting(cost: float | None, text: str | None) -> None:
    assert format_cost(cost) == text


def test_a_card_shows_its_cost_only_when_known() -> None:
    page = Page(render_gallery([rec(2, cost=0.5), rec(3)], title="t"))

    assert page.text_by_class["cost"] == ["0.5"]
    assert [c["data-cost"] for c in page.all("article")] == ["0.5", ""]


def test_the_summary_counts_rows_by_outcome_and_totals_cost_per_provider() -> None:
    records = [
        rec(2, provider="runway", cost=20),
        rec(3, provider="runway", cost=5.5),
        rec(4, "FAILED", provider="luma", error="x"),
        rec(5, "TIMED_OUT", provider="luma", error="x"),
        rec(6, "CANCELLED", provider="kling", cost=1),
        rec(7, "INVALID", error="x"),
    ]
    html = render_gallery(records, title="t")

    assert summary_counts(html) == {
        "total": "6 rows",
        "completed": "2 completed",
        "failed": "3 failed",  # FAILED, TIMED_OUT and CANCELLED
        "invalid": "1 invalid",
        "cost": "total cost: kling 1, runway 25.5 (3 of 6 rows priced)",
    }


def summary_counts(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-count="(\w+)">([^<]*)</span>', html))


def test_no_cost_known_means_no_total_and_all_priced_means_no_note() -> None:
    unpriced = summary_counts(render_gallery([rec(2), rec(3, "FAILED")], title="t"))
    priced = summary_counts(render_gallery([rec(2, provider="veo", cost=2)], title="t"))

    assert "cost" not in unpriced and unpriced["failed"] == "1 failed"
    assert priced["cost"] == "total cost: veo 2"


def test_filters_offer_the_statuses_and_providers_present() -> None:
    records = [rec(2, provider="runway"), rec(3, "FAILED", provider="luma"), rec(4, "INVALID")]
    html = render_gallery(records, title="t")
    options = re.findall(r'<option value="([^"]*)">([^<]*)</option>', html)

    assert options[:5] == [
        ("", "All statuses"),
        ("!COMPLETED", "Not completed (2)"),
        ("COMPLETED", "COMPLETED (1)"),
        ("FAILED", "FAILED (1)"),
        ("INVALID", "INVALID (1)"),
    ]
    assert options[5:9] == [
        ("", "All providers"),
        ("!none", "none (1)"),
        ("luma", "luma (1)"),
        ("runway", "runway (1)"),
    ]


def test_the_page_is_self_contained_and_its_policy_allows_only_its_own_script() -> None:
    html = render_gallery([rec(2, prompt="p")], title="t")
    page = Page(html)

    assert not page.all("link") and not page.all("iframe")
    assert all("src" not in attrs for attrs in page.all("script"))
    assert "http://" not in html and "https://" not in html and "@import" not in html
    (policy,) = [m["content"] for m in page.all("meta") if m.get("http-equiv")]
    digest = base64.b64encode(hashlib.sha256(gallery._SCRIPT.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in policy
    assert "default-src 'none'" in policy
    assert "unsafe-inline" not in policy


def test_an_empty_batch_still_renders() -> None:
    html = render_gallery([], title="Empty")

    assert "This batch has no rows." in html
    assert "0 rows" in html


def test_write_gallery_puts_index_html_beside_results_csv(tmp_path: Path) -> None:
    out = tmp_path / "out"
    records = [rec(2, output_path=str(out / "kite.mp4"), poster=str(out / "kite.jpg"))]

    location = gallery.write_gallery(records, str(out), title="Batch abc")

    assert gallery_paths(str(out)) == (f"{out}/index.html", f"{out}/results.csv")
    assert location == str((out / "index.html").resolve())
    page = Page((out / "index.html").read_text(encoding="utf-8"))
    assert page.all("video")[0]["src"] == "kite.mp4"
    assert page.all("img")[0]["src"] == "kite.jpg"


def test_write_gallery_to_an_object_store_url() -> None:
    out = "memory://gallery-test/batch"
    records = [rec(2, output_path=f"{out}/kite.mp4")]

    location = gallery.write_gallery(records, out + "/", title="Batch")

    assert location == f"{out}/index.html"
    assert 'src="kite.mp4"' in storage.read_text(location)
