"""The gallery: one self-contained `index.html` beside results.csv, a card a row.

The page needs no server and no network. Its CSS and its small script are inline, so it works
from `file://`, from a copied folder and from a bucket served over HTTP. Every piece of record
text is escaped and every link URL-quoted: a prompt is user input and so is an id. A
Content-Security-Policy that allows only the page's own script and style (by hash) is the
second line of defence: injected markup would still not run.

Links to videos and posters inside the output folder are relative, so the folder can be moved
or served as it is; other local files keep their absolute path, and object-store or HTTP(S)
URLs are used as given.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections import Counter
from html import escape
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from sceneflow import storage
from sceneflow.batches import ResultRecord

__all__ = [
    "GALLERY_NAME",
    "format_cost",
    "gallery_paths",
    "media_source",
    "render_gallery",
    "write_gallery",
]

GALLERY_NAME = "index.html"
# Schemes kept as given in a src or href. Anything else that looks like a URL (javascript://,
# data://) is quoted like a file name, which makes it a harmless relative link.
_URL_SCHEMES = {"http", "https", "s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "memory"}
_STATUS_ORDER = ("COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT", "UNKNOWN", "INVALID")
_PROBLEM = {"FAILED", "CANCELLED", "TIMED_OUT", "UNKNOWN", "INVALID"}
_NOT_COMPLETED = "!COMPLETED"
_NO_PROVIDER = "!none"  # a row with no provider (an invalid one); never a provider key


def gallery_paths(output_dir: str) -> tuple[str, str]:
    """Where a batch's gallery and its results.csv live: `(…/index.html, …/results.csv)`."""
    base = output_dir.rstrip("/")
    return f"{base}/{GALLERY_NAME}", f"{base}/results.csv"


def write_gallery(
    records: list[ResultRecord],
    output_dir: str,
    *,
    title: str,
    results_csv_name: str = "results.csv",
) -> str:
    """Write `index.html` beside results.csv in `output_dir` (a folder or an fsspec URL) and
    return its location."""
    page, _ = gallery_paths(output_dir)
    html = render_gallery(
        records, title=title, results_csv_name=results_csv_name, page_dir=output_dir
    )
    return storage.write_text(page, html)


def format_cost(cost: float | None) -> str | None:
    """A cost as the provider reports it (credits or money, per provider), without noise:
    25.0 → "25", 0.125 → "0.125", 1234.5 → "1,234.5"; None when unknown."""
    if cost is None or not math.isfinite(cost):
        return None
    text = f"{cost:,.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def media_source(location: str | None, page_dir: str | None = None) -> str | None:
    """The URL-quoted value for a src or href that points at `location`, seen from a page in
    `page_dir`: relative when `location` lies inside `page_dir`, else the absolute path (no
    `file://`), and an object-store or HTTP(S) URL as given. None when there is no location."""
    if not location:
        return None
    if storage.is_remote(location):
        if page_dir and storage.is_remote(page_dir):
            prefix = page_dir.rstrip("/") + "/"
            if location.startswith(prefix) and len(location) > len(prefix):
                # An object's name, relative: every ':' is quoted so it can never read as a
                # scheme (javascript:), and '?' and '#' are part of the name.
                return quote(location[len(prefix) :], safe="/%")
        if _scheme(location) in _URL_SCHEMES:
            return _quote_url(location)
    path = Path(location.removeprefix("file://"))
    if page_dir is None or storage.is_remote(page_dir):
        return _quote_path(path.as_posix())
    full = path.resolve()
    try:
        inside = full.relative_to(Path(page_dir.removeprefix("file://")).resolve())
    except ValueError:
        return _quote_path(full.as_posix())
    return _quote_path(PurePosixPath(inside).as_posix())


def render_gallery(
    records: list[ResultRecord],
    *,
    title: str,
    results_csv_name: str = "results.csv",
    page_dir: str | None = None,
) -> str:
    """The whole HTML page for `records`: a summary line, a link to results.csv, filters by
    status and provider, sorting by row or cost, and a card a row. `page_dir` is the folder the
    page will be written to; links into it are made relative (see `media_source`)."""
    ordered = sorted(records, key=lambda r: r.row_number)
    cards = "\n".join(_card(r, page_dir) for r in ordered)
    empty = '<p class="empty">This batch has no rows.</p>' if not ordered else ""
    csv_href = quote(results_csv_name, safe="/")
    policy = (
        "default-src 'none'; "
        f"script-src '{_sha256(_SCRIPT)}'; style-src '{_sha256(_STYLE)}'; "
        "img-src 'self' file: http: https: data:; media-src 'self' file: http: https: blob:; "
        "base-uri 'none'; form-action 'none'"
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{escape(policy)}">
<meta name="referrer" content="no-referrer">
<title>{escape(title)}</title>
<style>{_STYLE}</style>
</head>
<body>
<header>
<h1>{escape(title)}</h1>
<p class="summary" id="summary">{_summary(ordered)}</p>
<p class="links"><a id="results-csv" href="{escape(csv_href)}">{escape(results_csv_name)}</a></p>
<form class="controls" id="controls">
<label>Status <select id="filter-status">{_status_options(ordered)}</select></label>
<label>Provider <select id="filter-provider">{_provider_options(ordered)}</select></label>
<label>Sort <select id="sort">
<option value="row">Row number</option>
<option value="cost-desc">Cost, highest first</option>
<option value="cost-asc">Cost, lowest first</option>
</select></label>
<output id="shown">{len(ordered)} cards</output>
</form>
</header>
<main id="cards" class="grid">
{cards}
</main>
{empty}
<script>{_SCRIPT}</script>
</body>
</html>
"""


def _scheme(location: str) -> str:
    return location.split("://", 1)[0].lower()


def _quote_url(url: str) -> str:
    # Keep the URL's own structure and %-escapes; quote spaces, quotes, <, > and the like.
    return quote(url, safe=":/?#[]@!$&'()*+,;=%~")


def _quote_path(path: str) -> str:
    # POSIX keeps a leading "//", which a browser reads as another host (//evil.example/x).
    if path.startswith("//"):
        path = "/" + path.lstrip("/")
    return quote(path, safe="/")


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def _status_class(status: str) -> str:
    return f"s-{status.lower().replace('_', '-')}" if status in _STATUS_ORDER else "s-other"


def _summary(records: list[ResultRecord]) -> str:
    statuses = Counter(r.status for r in records)
    completed = statuses["COMPLETED"]
    invalid = statuses["INVALID"]
    failed = len(records) - completed - invalid
    parts = [
        f'<span class="count" data-count="total">{len(records)} rows</span>',
        f'<span class="count s-completed" data-count="completed">{completed} completed</span>',
        f'<span class="count s-failed" data-count="failed">{failed} failed</span>',
        f'<span class="count s-invalid" data-count="invalid">{invalid} invalid</span>',
    ]
    costs: dict[str, float] = {}
    priced = 0
    for r in records:
        if r.cost is not None and math.isfinite(r.cost):
            costs[r.provider or "unknown"] = costs.get(r.provider or "unknown", 0.0) + r.cost
            priced += 1
    if costs:
        # Providers report cost in their own units (Runway credits, money), so totals are kept
        # per provider rather than added up into one meaningless number.
        each = ", ".join(f"{escape(p)} {format_cost(c)}" for p, c in sorted(costs.items()))
        note = "" if priced == len(records) else f" ({priced} of {len(records)} rows priced)"
        parts.append(f'<span class="count" data-count="cost">total cost: {each}{note}</span>')
    return " · ".join(parts)


def _status_options(records: list[ResultRecord]) -> str:
    counts = Counter(r.status for r in records)
    known = [s for s in _STATUS_ORDER if s in counts]
    other = sorted(s for s in counts if s not in _STATUS_ORDER)
    options = ['<option value="">All statuses</option>']
    if counts["COMPLETED"] != len(records):
        not_done = len(records) - counts["COMPLETED"]
        options.append(f'<option value="{_NOT_COMPLETED}">Not completed ({not_done})</option>')
    options += [
        f'<option value="{escape(s)}">{escape(s)} ({counts[s]})</option>' for s in known + other
    ]
    return "".join(options)


def _provider_options(records: list[ResultRecord]) -> str:
    counts = Counter(r.provider or "" for r in records)
    options = ['<option value="">All providers</option>']
    options += [
        f'<option value="{escape(p or _NO_PROVIDER)}">{escape(p or "none")} ({n})</option>'
        for p, n in sorted(counts.items())
    ]
    return "".join(options)


def _card(record: ResultRecord, page_dir: str | None) -> str:
    video = media_source(record.output_path, page_dir)
    poster = media_source(record.poster, page_dir)
    row = record.row_number
    cost = format_cost(record.cost)
    data_cost = repr(record.cost) if cost is not None else ""
    media: list[str] = []
    if poster:
        media.append(f'<img class="poster" src="{escape(poster)}" alt="Poster of row {row}">')
    if video:
        preload = "none" if poster else "metadata"
        poster_attr = f' poster="{escape(poster)}"' if poster else ""
        media.append(
            f'<video class="clip" src="{escape(video)}"{poster_attr} preload="{preload}" '
            "muted loop playsinline></video>"
        )
    if not media:
        media.append('<div class="no-media">no video</div>')
    status_class = _status_class(record.status)
    media.append(f'<span class="badge {status_class}">{escape(record.status)}</span>')
    playable = " playable" if video else ""
    label = f' tabindex="0" aria-label="Play the video of row {row}"' if video else ""

    meta = [f"<dt>Row</dt><dd>{row}</dd>"]
    if record.id is not None:
        meta.append(f'<dt>Id</dt><dd class="row-id">{escape(record.id)}</dd>')
    provider = escape(record.provider or "none")
    model = f' · <span class="model">{escape(record.model)}</span>' if record.model else ""
    meta.append(f'<dt>Provider</dt><dd><span class="provider">{provider}</span>{model}</dd>')
    if record.duration is not None and math.isfinite(record.duration):
        meta.append(f"<dt>Duration</dt><dd>{record.duration:.1f} s</dd>")
    if cost is not None:
        meta.append(f'<dt>Cost</dt><dd class="cost">{escape(cost)}</dd>')
    if video:
        meta.append(
            f'<dt>Video</dt><dd><a href="{escape(video)}" target="_blank" '
            'rel="noopener noreferrer">open</a></dd>'
        )

    prompt = record.prompt or ""
    body = [f'<p class="prompt" title="{escape(prompt)}">{escape(prompt) or "(no prompt)"}</p>']
    body.append(f'<dl class="meta">{"".join(meta)}</dl>')
    if record.error and (record.status in _PROBLEM or record.status not in _STATUS_ORDER):
        body.append(f'<p class="error" title="{escape(record.error)}">{escape(record.error)}</p>')
    if record.warnings:
        body.append(f'<p class="warnings">{escape(record.warnings)}</p>')

    return (
        f'<article class="card {status_class}" id="row-{row}" data-row="{row}" '
        f'data-status="{escape(record.status)}" data-provider="{escape(record.provider or "")}" '
        f'data-cost="{data_cost}">'
        f'<div class="media{playable}"{label}>{"".join(media)}</div>'
        f'<div class="body">{"".join(body)}</div>'
        "</article>"
    )


_STYLE = """
:root { color-scheme: light dark; --bg: #f4f5f7; --card: #fff; --ink: #1d2330; --muted: #5f6b7a;
  --line: #e1e4ea; --ok: #1a7f4b; --bad: #b42318; --warn: #b54708; --info: #475467; }
@media (prefers-color-scheme: dark) { :root { --bg: #111418; --card: #1b2027; --ink: #e7eaf0;
  --muted: #9aa4b2; --line: #2c333d; --ok: #4cc38a; --bad: #f97066; --warn: #fdb022;
  --info: #98a2b3; } }
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header { position: sticky; top: 0; z-index: 2; padding: 16px 24px 12px;
  background: var(--bg); border-bottom: 1px solid var(--line); }
h1 { margin: 0 0 4px; font-size: 1.35rem; font-weight: 650; overflow-wrap: anywhere; }
.summary, .links { margin: 2px 0; color: var(--muted); }
.summary .s-completed { color: var(--ok); } .summary .s-failed { color: var(--bad); }
.summary .s-invalid { color: var(--warn); }
a { color: inherit; }
.controls { display: flex; flex-wrap: wrap; gap: 8px 16px; align-items: center; margin-top: 8px; }
.controls label { display: flex; gap: 6px; align-items: center; color: var(--muted); }
select { font: inherit; padding: 3px 6px; border-radius: 6px; border: 1px solid var(--line);
  background: var(--card); color: var(--ink); }
output { color: var(--muted); margin-left: auto; }
.grid { display: grid; gap: 16px; padding: 16px 24px 32px;
  grid-template-columns: repeat(auto-fill, minmax(min(100%, 280px), 1fr)); }
.empty { padding: 0 24px; color: var(--muted); }
.card { display: flex; flex-direction: column; overflow: hidden; background: var(--card);
  border: 1px solid var(--line); border-radius: 10px; box-shadow: 0 1px 2px rgb(0 0 0 / 6%); }
.card.s-failed, .card.s-timed-out, .card.s-unknown { border-top: 3px solid var(--bad); }
.card.s-invalid { border-top: 3px solid var(--warn); }
.card.s-completed { border-top: 3px solid var(--ok); }
.media { position: relative; aspect-ratio: 16 / 9; background: #0d0f12; overflow: hidden; }
.media.playable { cursor: pointer; }
.media:focus-visible { outline: 3px solid #4b8bf5; outline-offset: -3px; }
.media img, .media video { position: absolute; inset: 0; width: 100%; height: 100%;
  object-fit: contain; display: block; }
.media img + video { opacity: 0; transition: opacity .15s; }
.media.playing video { opacity: 1; }
.no-media { position: absolute; inset: 0; display: grid; place-items: center; color: #8a94a3;
  font-size: .9rem; letter-spacing: .04em; text-transform: uppercase; }
.badge { position: absolute; top: 8px; left: 8px; padding: 1px 8px; border-radius: 999px;
  font-size: .72rem; font-weight: 700; letter-spacing: .03em; color: #fff;
  background: var(--info); }
.badge.s-completed { background: #1a7f4b; } .badge.s-invalid { background: #b54708; }
.badge.s-failed, .badge.s-timed-out, .badge.s-unknown { background: #b42318; }
.body { padding: 10px 12px 12px; display: flex; flex-direction: column; gap: 6px; }
.prompt { margin: 0; font-weight: 550; overflow-wrap: anywhere; display: -webkit-box;
  -webkit-box-orient: vertical; -webkit-line-clamp: 4; overflow: hidden; }
.meta { margin: 0; display: grid; grid-template-columns: auto 1fr; gap: 1px 10px;
  font-size: .85rem; color: var(--muted); }
.meta dt { font-weight: 600; } .meta dd { margin: 0; overflow-wrap: anywhere; }
.error, .warnings { margin: 0; font-size: .85rem; overflow-wrap: anywhere; white-space: pre-wrap;
  display: -webkit-box; -webkit-box-orient: vertical; -webkit-line-clamp: 6; overflow: hidden; }
.error { color: var(--bad); } .warnings { color: var(--warn); }
@media (max-width: 640px) { header { position: static; padding: 12px 14px 10px; }
  .grid { padding: 12px 14px 24px; gap: 12px; } }
"""

# No record data reaches the script: it reads the cards' data-* attributes and writes only
# textContent and `hidden`, so nothing it handles is ever parsed as HTML.
_SCRIPT = """
(() => {
  "use strict";
  const grid = document.getElementById("cards");
  const cards = Array.from(grid.querySelectorAll(".card"));
  const status = document.getElementById("filter-status");
  const provider = document.getElementById("filter-provider");
  const sort = document.getElementById("sort");
  const shown = document.getElementById("shown");
  const cost = (card) => (card.dataset.cost === "" ? null : Number(card.dataset.cost));

  function filter() {
    let count = 0;
    for (const card of cards) {
      const s = status.value;
      const okStatus = s === "" || (s === "!COMPLETED"
        ? card.dataset.status !== "COMPLETED" : card.dataset.status === s);
      const p = provider.value === "!none" ? "" : provider.value;
      const okProvider = provider.value === "" || card.dataset.provider === p;
      card.hidden = !(okStatus && okProvider);
      if (!card.hidden) count += 1;
    }
    shown.textContent = count === cards.length
      ? `${count} cards` : `${count} of ${cards.length} cards`;
  }

  function order() {
    const key = sort.value;
    const sorted = cards.slice().sort((a, b) => {
      if (key !== "row") {
        const ca = cost(a), cb = cost(b);
        if (ca !== cb) {
          if (ca === null) return 1;
          if (cb === null) return -1;
          return key === "cost-asc" ? ca - cb : cb - ca;
        }
      }
      return Number(a.dataset.row) - Number(b.dataset.row);
    });
    for (const card of sorted) grid.appendChild(card);
  }

  for (const media of grid.querySelectorAll(".media.playable")) {
    const video = media.querySelector("video");
    const play = () => {
      const started = video.play();
      if (started) started.catch(() => media.classList.remove("playing"));
    };
    const toggle = () => {
      if (media.classList.toggle("pinned")) { video.controls = true; play(); }
      else { video.controls = false; video.pause(); }
    };
    video.addEventListener("playing", () => media.classList.add("playing"));
    video.addEventListener("pause", () => media.classList.remove("playing"));
    media.addEventListener("mouseenter", play);
    media.addEventListener("mouseleave", () => {
      if (!media.classList.contains("pinned")) video.pause();
    });
    media.addEventListener("click", (event) => {
      // Once pinned the video shows its own controls, and clicks on it are theirs.
      if (!(media.classList.contains("pinned") && event.target === video)) toggle();
    });
    media.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); toggle(); }
    });
  }

  status.addEventListener("change", filter);
  provider.addEventListener("change", filter);
  sort.addEventListener("change", order);
  document.getElementById("controls").addEventListener("submit", (e) => e.preventDefault());
  filter();
  order();
})();
"""
