"""The README's "Start a batch from the UI" steps, done by headless Chromium on the real Prefect
UI that `deployments/serve.sh` (`make serve`) brings up: open batch-from-csv, Run → Custom run,
fill the form, submit, and see the finished run with its results artifact.

Chromium is Debian's package (`.ci/browser.sh` installs it); Playwright drives it through the
node driver inside its wheel, so nothing is downloaded. Screenshots go to `ui-screenshots/` at
the repository root, which git ignores.
"""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from adapters import Provider
from sceneflow.batches import batch_id_for
from tests.support.emulators._base import free_port
from tests.support.prefect_runs import tail_logs, wait_for_flow_run

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

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
TINY_CSV = (
    "id,prompt,resolution,duration,fps,aspect_ratio,motion_intensity\n"
    "kite,A red kite over a green hill,160x90,1,12,16:9,3\n"
    "boat,A blue boat on a calm lake,160x90,1,12,16:9,5\n"
)


def _missing(what: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {what}")
    pytest.skip(what, allow_module_level=True)


if not CHROMIUM.is_file():
    _missing(f"{CHROMIUM} is missing: run `bash .ci/browser.sh` (installs Debian's chromium)")
try:
    from playwright.sync_api import Locator, Page, expect, sync_playwright
except ImportError:
    _missing("the playwright package is missing: `pip install -e '.[dev]'` installs it")


@dataclass
class Served:
    root: Path
    ui: str
    api: str

    def logs(self) -> str:
        return tail_logs(sorted((self.root / "prefect" / "serve").glob("*.log")))

    def wait_for(self, flow_run_id: str, timeout: float = 240) -> dict[str, Any]:
        return wait_for_flow_run(self.api, flow_run_id, logs=self.logs, timeout=timeout)


def _end(groups: list[int], sig: signal.Signals | None, timeout: float) -> None:
    """Signal each process group (serve.sh made each process a group leader) and wait for it
    to be gone; SIGKILL what outlives the timeout."""
    deadline = time.monotonic() + timeout
    for pid in groups:
        try:
            if sig is not None:
                os.killpg(pid, sig)
            while time.monotonic() < deadline:
                os.killpg(pid, 0)
                time.sleep(0.2)
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue


def _stop(env: dict[str, str], pids: list[int]) -> None:
    # Prefect 3.9's worker answers SIGTERM by sending SIGINT to itself and then often hangs for
    # more than 30 s (more surely still once its server is gone), so it gets a short grace
    # period before SIGKILL; it holds nothing by then, as every run under test has finished.
    _end(pids[1:], signal.SIGTERM, timeout=5)
    subprocess.run(["bash", "deployments/serve.sh", "stop"], cwd=REPO, env=env, check=True)
    _end(pids[:1], None, timeout=30)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`deployments/serve.sh` detached: server with its UI, the deployments, one worker."""
    root = tmp_path_factory.mktemp("ui")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SCENEFLOW_"))}
    env.update(
        SCENEFLOW_PREFECT_PORT=str(port),
        SCENEFLOW_SERVE_DETACH="1",
        SCENEFLOW_WORKERS="1",
        SCENEFLOW_BIN=str(Path(sys.executable).parent),
        PREFECT_HOME=str(root / "prefect"),
        SCENEFLOW_HOME=str(root / "sceneflow"),
        DATABASE_URL=f"sqlite:///{root / 'sceneflow' / 'sceneflow.db'}",
        ENCRYPTION_KEY=base64.b64encode(os.urandom(32)).decode(),  # the stack's own
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        # The scheduled inbox would otherwise run on the repository's own inbox folder.
        PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false",
        PREFECT_WORKER_QUERY_SECONDS="2",
        PREFECT_LOGGING_LEVEL="INFO",
    )
    s = Served(root=root, ui=f"http://127.0.0.1:{port}", api=f"http://127.0.0.1:{port}/api")
    pid_file = root / "prefect" / "serve" / "pids"
    pids: list[int] = []
    try:
        done = subprocess.run(
            ["bash", "deployments/serve.sh"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=400,
        )
        if pid_file.exists():
            pids = [int(p) for p in pid_file.read_text().split()]
        if done.returncode != 0:
            pytest.fail(f"serve.sh exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        assert f"Prefect UI:   {s.ui}" in done.stdout, done.stdout
        yield s
    finally:
        _stop(env, pids)


@pytest.fixture
def page(served: Served, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh headless Chromium page. When the test fails, its screenshot, HTML and the server
    and worker logs are kept (pytest counts the failure before it runs this teardown)."""
    SHOTS.mkdir(exist_ok=True)
    failed_before = request.session.testsfailed
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            pg = browser.new_page(viewport={"width": 1400, "height": 1300})
            pg.set_default_timeout(60_000)
            yield pg
            if request.session.testsfailed > failed_before:
                name = request.node.name
                shot, html = SHOTS / f"failed-{name}.png", SHOTS / f"failed-{name}.html"
                pg.screenshot(path=str(shot))
                html.write_text(pg.content())
                print(f"\nfailed on {pg.url}: screenshot {shot}, html {html}\n{served.logs()}")
        finally:
            browser.close()


def _open_custom_run(pg: Page, served: Served, deployment: str) -> None:
    pg.goto(f"{served.ui}/deployments")
    pg.get_by_role("link", name=deployment, exact=True).click()
    pg.get_by_role("button", name="Run", exact=True).click()
    pg.get_by_text("Custom run", exact=True).click()
    pg.wait_for_url(re.compile(r"/deployments/deployment/[0-9a-f-]+/run"))


def _field(pg: Page, name: str) -> Locator:
    """One parameter of the schema form. Its <label> points at no input, so the field is found
    by its label text and the input looked up inside it."""
    label = re.compile(rf"^{re.escape(name)}( \(Optional\))?$")
    return pg.locator(".schema-form-property").filter(
        has=pg.locator(".schema-form-property__label", has_text=label)
    )


def _expect_dropdown_options(pg: Page, field: Locator, expected: list[str]) -> None:
    """Open a select field and check its options, in order. A mouse click opens Prefect's
    popover and closes it again at once under headless Chromium; the keyboard opens it for
    good. The options render a moment after the listbox, so the check retries until they match
    (Playwright's `expect`), instead of reading whatever is there when the listbox appears."""
    field.locator("button.p-select-button__control").press("ArrowDown")
    options = pg.get_by_role("listbox").get_by_role("option")
    expect(options).to_have_text(expected, timeout=15_000)


def _submit(pg: Page) -> dict[str, Any]:
    """Submit the form and return the created flow run. Prefect's SQLite server sometimes
    answers a write with 500 "database is locked"; the UI then shows an error toast and keeps
    the form, and a user simply submits again."""
    for _ in range(3):
        with pg.expect_response(
            lambda r: r.request.method == "POST" and r.url.endswith("/create_flow_run")
        ) as created:
            pg.get_by_role("button", name="Submit", exact=True).click()
        if created.value.status == 201:
            return dict(created.value.json())
        assert created.value.status >= 500, created.value.text()
        pg.wait_for_timeout(2000)
    pytest.fail(f"creating the flow run failed 3 times: {created.value.text()}")


def test_a_custom_run_of_batch_from_csv_finishes_with_its_results_artifact(
    page: Page, served: Served
) -> None:
    csv = served.root / "tiny.csv"
    csv.write_text(TINY_CSV)
    out = served.root / "out-ui"
    user = "ui-browser"
    _open_custom_run(page, served, "batch-from-csv")

    _field(page, "csv_path").locator("textarea").fill(str(csv))
    _field(page, "user_id").locator("textarea").fill(user)
    _field(page, "output_dir").locator("textarea").fill(str(out))
    provider = _field(page, "provider")
    _expect_dropdown_options(page, provider, [p.value for p in Provider])
    page.get_by_role("option", name="local", exact=True).click()
    assert provider.locator(".p-select-button__value").inner_text() == "local"
    run = _submit(page)

    assert run["parameters"] == {
        "csv_path": str(csv),
        "user_id": user,
        "provider": "local",
        "output_dir": str(out),
        "max_concurrency": 4,
        "deadline_seconds": None,
        "batch_id": None,
        "regenerate": None,
        "resubmit_unknown": False,
        "strict": False,
    }
    # The toast that confirms the new run. Prefect mounts two toast containers, and the later
    # one lies on top.
    page.get_by_role("button", name="View run").last.click()
    page.wait_for_url(f"**/runs/flow-run/{run['id']}**")
    served.wait_for(run["id"])

    page.reload()
    page.get_by_text("Completed", exact=True).first.wait_for()
    page.locator("li.p-tab", has_text=re.compile(r"^Artifacts$")).click()
    batch = batch_id_for(str(csv), user)
    page.get_by_text(f"batch-{batch}-progress").wait_for()
    results_card = page.get_by_role("link").filter(has_text=f"batch-{batch}-results")
    results_card.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "finished-run.png"))
    print(f"screenshot of the finished run: {SHOTS / 'finished-run.png'}")

    results_card.click()
    table = page.get_by_role("table")
    table.get_by_text("COMPLETED").nth(1).wait_for()
    rows = table.get_by_role("row").all_inner_texts()
    assert [r.split()[:4] for r in rows[1:]] == [
        ["kite", "2", "local", "COMPLETED"],
        ["boat", "3", "local", "COMPLETED"],
    ]
    page.screenshot(path=str(SHOTS / "results-artifact.png"))
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "boat.jpg",
        "boat.mp4",
        "index.html",
        "kite.jpg",
        "kite.mp4",
        "results.csv",
    ]
    assert list(pd.read_csv(out / "results.csv")["status"]) == ["COMPLETED", "COMPLETED"]


def test_the_generate_video_form_shows_the_request_and_a_provider_dropdown(
    page: Page, served: Served
) -> None:
    _open_custom_run(page, served, "generate-video")

    # The request model renders as nested fields with their descriptions and limits.
    request = _field(page, "request")
    for label in ("Prompt", "Aspect Ratio", "Motion Intensity", "Fps (Optional)"):
        request.get_by_text(label, exact=True).wait_for()
    request.get_by_text("Frames per second, 6 to 60.").wait_for()
    provider = _field(page, "provider")
    assert provider.locator("textarea, input").count() == 0  # a select, not free text
    _expect_dropdown_options(page, provider, [p.value for p in Provider])
    # The form scrolls inside the app's own container, so a tall window shows all of it.
    page.set_viewport_size({"width": 1400, "height": 2600})
    page.screenshot(path=str(SHOTS / "generate-video-form.png"))
