"""The inbox folder that a scheduled run empties. Pure file operations, no Prefect.

    inbox/
      new.csv                      dropped by a user (copy to a temporary name, then rename in)
      processing/<claim>.csv       claimed by exactly one run
      done/<claim>/new.csv         every row completed; results.csv beside it
      failed/<claim>/new.csv       something failed; error.txt says what, results.csv if any

A run claims a file by renaming it into processing/. A rename within one filesystem is atomic,
so when two runs overlap, exactly one rename succeeds and the other run sees the file gone.
Object stores have no atomic rename, so the inbox must be a local or network filesystem.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

__all__ = ["Claim", "claim", "file_claim", "pending", "prepare", "stuck"]

FOLDERS = ("processing", "done", "failed")
Outcome = Literal["done", "failed"]


@dataclass(frozen=True)
class Claim:
    """One CSV that this run owns: its original name and its unique claim key."""

    inbox: Path
    name: str
    key: str

    @property
    def path(self) -> Path:
        return self.inbox / "processing" / f"{self.key}.csv"


def prepare(inbox: Path) -> None:
    """Create the inbox and its processing/, done/ and failed/ folders."""
    if inbox.exists() and not inbox.is_dir():
        raise NotADirectoryError(f"inbox_dir {inbox} is a file; pass a folder.")
    for folder in FOLDERS:
        (inbox / folder).mkdir(parents=True, exist_ok=True)


def pending(inbox: Path, settle_seconds: float = 0.0) -> list[Path]:
    """CSVs waiting in the inbox, oldest first; files changed in the last `settle_seconds` are
    left for the next run, since they may still be being written."""
    cutoff = time.time() - settle_seconds
    files = []
    for path in inbox.iterdir():
        if path.suffix.lower() != ".csv" or path.name.startswith(".") or not path.is_file():
            continue
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            continue  # claimed by another run between iterdir and stat
        if mtime <= cutoff:
            files.append((mtime, path.name, path))
    return [p for _, _, p in sorted(files)]


def claim(path: Path) -> Claim | None:
    """Move `path` into processing/ under a unique key; None when another run got it first."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    found = Claim(
        inbox=path.parent, name=path.name, key=f"{path.stem}-{stamp}-{uuid.uuid4().hex[:8]}"
    )
    try:
        os.rename(path, found.path)
    except FileNotFoundError:
        return None
    # The claim time, so that stuck() can tell how long a file has been in processing/.
    os.utime(found.path)
    return found


def file_claim(found: Claim, outcome: Outcome, attachments: dict[str, str]) -> Path:
    """Move the claimed CSV to done/<key>/ or failed/<key>/ with text files written beside it.
    The attachments are written first, so a CSV in done/ always has its results."""
    folder = found.inbox / outcome / found.key
    folder.mkdir(parents=True)
    for name, text in attachments.items():
        (folder / name).write_text(text, encoding="utf-8")
    os.rename(found.path, folder / found.name)
    return folder


def stuck(inbox: Path, older_than_seconds: float) -> list[Path]:
    """Claims older than the given age: probably left by a run that crashed."""
    cutoff = time.time() - older_than_seconds
    return sorted(p for p in (inbox / "processing").glob("*.csv") if p.stat().st_mtime < cutoff)
