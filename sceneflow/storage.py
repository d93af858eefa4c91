"""Where finished videos go: a local folder, or any fsspec URL (s3://, gs://, memory://) so that
workers on different machines write to one place."""

from __future__ import annotations

from pathlib import Path

import fsspec

from sceneflow.settings import get_settings


def is_remote(location: str) -> bool:
    return "://" in location and not location.startswith("file://")


def _local(location: str) -> Path:
    return Path(location.removeprefix("file://"))


def staging_path(output_dir: str, name: str) -> Path:
    """Where a download lands first: the output folder itself, or a local staging folder."""
    folder = get_settings().home / "staging" if is_remote(output_dir) else _local(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def publish(local: Path, output_dir: str, name: str) -> str:
    """Move a verified file to its final place and return that place."""
    if not is_remote(output_dir):
        return str(local.resolve())
    target = f"{output_dir.rstrip('/')}/{name}"
    fs, path = fsspec.core.url_to_fs(target)
    fs.put_file(str(local), path)
    local.unlink()
    return target


def exists(location: str) -> bool:
    if not is_remote(location):
        return _local(location).is_file()
    fs, path = fsspec.core.url_to_fs(location)
    return bool(fs.exists(path))


def read_text(location: str) -> str:
    """Read a small text file from a folder or any fsspec URL."""
    if not is_remote(location):
        return _local(location).read_text(encoding="utf-8")
    with fsspec.open(location, "r", encoding="utf-8") as fh:
        return str(fh.read())


def write_text(location: str, text: str) -> str:
    """Write a small text file (results.csv) beside the videos."""
    if not is_remote(location):
        path = _local(location)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return str(path.resolve())
    with fsspec.open(location, "w", encoding="utf-8") as fh:
        fh.write(text)
    return location
