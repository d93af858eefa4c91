"""The batch gallery (`index.html` from `sceneflow.gallery`), opened by headless Chromium from
`file://` with no server: every card with its poster, the status and provider filters, sorting
by cost, hover-to-play, and hostile prompts that stay text.

Chromium is Debian's package (`.ci/browser.sh` installs it), driven by Playwright as in
test_ui_browser.py. The screenshot of the page goes to `ui-screenshots/gallery.png` at the
repository root (git ignores it); a failing test also keeps the page's screenshot and HTML there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sceneflow.batches import ResultRecord
from sceneflow.gallery import write_gallery
from sceneflow.posters import write_poster
from tests.support.emulators._base import sample_mp4

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "ui-screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # The machines are offline: no update checks, sync or component downloads.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCRIPT_PROMPT = "<script>window.__pwned=1</script>"
ATTRIBUTE_PROMPT = '"><img src=x onerror="window.__pwned=2">'


def _missing(what: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {what}")
    pytest.skip(what, allow_module_level=True)


if not CHROMIUM.is_file():
    _missing(f"{CHROMIUM} is missing: run `bash .ci/browser.sh` (installs Debian's chromium)")
try:
    from playwright.sync_api import ConsoleMessage, Page, expect, sync_playwright
except ImportError:
    _missing("the playwright package is missing: `pip install -e '.[dev]'` installs it")


@pytest.fixture
def page(request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh headless Chromium page that records console errors in `page.errors`. When the
    test fails, its screenshot and HTML are kept (pytest counts the failure before teardown)."""
    SHOTS.mkdir(exist_ok=True)
    failed_before = request.session.testsfailed
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            pg = browser.new_page(viewport={"width": 1280, "height": 1000})
            pg.set_default_timeout(30_000)
            errors: list[str] = []

            def on_console(message: ConsoleMessage) -> None:
                if message.type == "error":
                    errors.append(message.text)

            pg.on("console", on_console)
            pg.on("pageerror", lambda e: errors.append(str(e)))
            pg.errors = errors  # type: ignore[attr-defined]
            yield pg
            if request.session.testsfailed > failed_before:
                name = request.node.name
                shot, html = SHOTS / f"failed-{name}.png", SHOTS / f"failed-{name}.html"
                pg.screenshot(path=str(shot), full_page=True)
                html.write_text(pg.content())
                print(f"\nfailed on {pg.url}: screenshot {shot}, html {html}\nconsole: {errors}")
        finally:
            browser.close()


def _completed(out: Path, row: int, name: str, **fields: object) -> ResultRecord:
    video = out / f"{name}.mp4"
    video.write_bytes(sample_mp4(seconds=2, width=160, height=90, fps=8))
    return ResultRecord.model_validate(
        {
            "row_number": row,
            "id": name,
            "status": "COMPLETED",
            "output_path": str(video.resolve()),
            "poster": str(write_poster(video, width=320).resolve()),
            "duration": 2.0,
            **fields,
        }
    )


@pytest.fixture
def gallery(tmp_path: Path) -> Path:
    """A batch folder as the pipeline leaves it: videos, posters and index.html."""
    out = tmp_path / "batch out"  # a space, so links must be quoted to work
    out.mkdir()
    records = [
        _completed(out, 2, "kite", prompt="A red kite", provider="runway", model="gen4.5", cost=40),
        _completed(out, 3, "boat", prompt="A blue boat", provider="luma", model="ray-2", cost=5),
        ResultRecord(
            row_number=4,
            id="storm",
            status="FAILED",
            prompt="A storm at sea",
            provider="luma",
            model="ray-2",
            error="luma refused the prompt (moderation)",
        ),
        ResultRecord(
            row_number=5,
            status="INVALID",
            prompt="Too long a clip",
            provider="runway",
            error="duration: must be at most 10 seconds",
        ),
        _completed(out, 6, "script", prompt=SCRIPT_PROMPT, provider="runway", cost=12.5),
        ResultRecord(
            row_number=7,
            id=ATTRIBUTE_PROMPT,
            status="FAILED",
            prompt=ATTRIBUTE_PROMPT,
            provider="runway",
            error=ATTRIBUTE_PROMPT,
        ),
    ]
    return Path(write_gallery(records, str(out), title="Batch <b>demo</b>"))


def _rows(pg: Page, *, visible_only: bool = True) -> list[int]:
    selector = ".card:not([hidden])" if visible_only else ".card"
    return [int(r) for r in pg.locator(selector).evaluate_all("cs => cs.map(c => c.dataset.row)")]


def test_the_gallery_shows_filters_and_sorts_the_batch_from_a_file_url(
    page: Page, gallery: Path
) -> None:
    page.goto(gallery.as_uri())

    expect(page).to_have_title("Batch <b>demo</b>")
    assert _rows(page) == [2, 3, 4, 5, 6, 7]
    assert (
        page.locator("#summary")
        .inner_text()
        .startswith("6 rows · 3 completed · 2 failed · 1 invalid · total cost: luma 5, runway 52.5")
    )
    # Every completed row's poster loaded from its relative, quoted path.
    page.wait_for_function("Array.from(document.images).every(i => i.complete)")
    sizes = page.locator("img.poster").evaluate_all("imgs => imgs.map(i => i.naturalWidth)")
    assert sizes == [160, 160, 160]  # asked for 320, never wider than the 160-wide video
    # The hostile prompts and id are on the page as text, and neither ran.
    assert page.locator("#row-6 .prompt").inner_text() == SCRIPT_PROMPT
    assert page.locator("#row-7 .prompt").inner_text() == ATTRIBUTE_PROMPT
    assert page.locator("#row-7 .row-id").inner_text() == ATTRIBUTE_PROMPT
    assert page.evaluate("typeof window.__pwned") == "undefined"
    expect(page.locator("#row-4 .error")).to_have_text("luma refused the prompt (moderation)")
    page.screenshot(path=str(SHOTS / "gallery.png"), full_page=True)
    print(f"screenshot of the gallery: {SHOTS / 'gallery.png'}")
    # On a phone the grid falls to one column, with nothing wider than the screen.
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(SHOTS / "gallery-narrow.png"))
    page.set_viewport_size({"width": 1280, "height": 1000})

    page.select_option("#filter-status", "COMPLETED")
    assert _rows(page) == [2, 3, 6]
    expect(page.locator("#row-4")).to_be_hidden()
    expect(page.locator("#row-7")).to_be_hidden()
    expect(page.locator("#shown")).to_have_text("3 of 6 cards")
    page.select_option("#filter-status", "!COMPLETED")
    assert _rows(page) == [4, 5, 7]
    page.select_option("#filter-provider", "luma")
    assert _rows(page) == [4]
    page.select_option("#filter-status", "")
    assert _rows(page) == [3, 4]
    page.select_option("#filter-provider", "")

    page.select_option("#sort", "cost-desc")
    assert _rows(page) == [2, 6, 3, 4, 5, 7]  # 40, 12.5, 5, then the unpriced in row order
    page.select_option("#sort", "cost-asc")
    assert _rows(page) == [3, 6, 2, 4, 5, 7]
    page.select_option("#sort", "row")
    assert _rows(page) == [2, 3, 4, 5, 6, 7]

    assert page.evaluate("typeof window.__pwned") == "undefined"
    # The page's own script and style ran under its Content-Security-Policy: no violations,
    # no failed loads.
    assert page.errors == []  # type: ignore[attr-defined]


def test_hovering_a_card_plays_its_video_inline(page: Page, gallery: Path) -> None:
    page.goto(gallery.as_uri())
    media = page.locator("#row-2 .media")

    media.hover()

    expect(media).to_have_class("media playable playing", timeout=15_000)
    page.wait_for_function("document.querySelector('#row-2 video').currentTime > 0")
    assert page.locator("#row-2 video").evaluate("v => v.videoWidth") == 160
    page.mouse.move(0, 0)
    expect(media).to_have_class("media playable")
    # A click pins it: it keeps playing, with controls, after the mouse leaves.
    media.click()
    page.mouse.move(0, 0)
    expect(media).to_have_class("media playable pinned playing")
    assert page.locator("#row-2 video").evaluate("v => v.controls") is True
    assert page.errors == []  # type: ignore[attr-defined]
