"""The pre-flight checks, called directly: each bad setting is one ConfigError line that names it
and says what to do, and a check that passes leaves nothing behind."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import fsspec
import pytest
from sqlmodel import func, select

from sceneflow import db, preflight, store
from sceneflow.errors import (
    ConfigError,
    CredentialsError,
    EncryptionKeyError,
    RequestValidationError,
)
from sceneflow.models import StandardVideoRequest
from sceneflow.providers import Capabilities
from sceneflow.settings import get_settings

HEADER = "id,prompt,aspect_ratio,motion_intensity"
REQUEST = StandardVideoRequest(prompt="A kite", aspect_ratio="16:9", motion_intensity=3)


def caps(provider: str) -> Capabilities:
    """`local` needs no keys; every other provider here needs an api_key."""
    return Capabilities(
        provider=provider,
        default_model="m",
        models={},
        credential_fields=[] if provider == "local" else ["api_key"],
        can_cancel=False,
        connection_test="none",
    )


def no_limits(provider: str, request: StandardVideoRequest) -> list[str]:
    return []


def message(error: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(error.value)
    assert "\n" not in text
    return text


def _can_write(path: Path) -> bool:
    try:
        if path.is_dir():
            probe = path / ".probe"
            probe.touch()
            probe.unlink()
        else:
            with path.open("ab"):
                pass
    except OSError:
        return False
    return True


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make `path` read-only for this process: mode bits, or (as root, who ignores them) the
    immutable attribute; skip the test where neither works."""
    mode = path.stat().st_mode
    path.chmod(mode & ~0o222)
    immutable = False
    try:
        if _can_write(path):
            chattr = shutil.which("chattr")
            if chattr is None or subprocess.run([chattr, "+i", str(path)]).returncode != 0:
                pytest.skip("cannot make a path read-only here (root without chattr +i)")
            immutable = True
        yield
    finally:
        if immutable:
            subprocess.run([str(shutil.which("chattr")), "-i", str(path)], check=True)
        path.chmod(mode)


def job_count() -> int:
    with db.session_scope() as session:
        return session.exec(select(func.count()).select_from(store.GenerationJob)).one()


# --- the output folder -------------------------------------------------------------------


def test_an_output_folder_that_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "out.mp4"
    target.write_text("x")
    with pytest.raises(ConfigError) as info:
        preflight.check_output(str(target))
    assert message(info) == (
        f"The output folder {target} is a file, not a folder: pass a folder you can write to "
        "for the videos and results.csv (it is created if missing)."
    )


def test_an_output_folder_below_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError) as info:
        preflight.check_output(str(tmp_path / "f" / "videos"))
    assert message(info) == (
        f"The output folder {tmp_path}/f/videos cannot be created: {tmp_path}/f is a file; pass "
        "a folder you can write to for the videos and results.csv."
    )


def test_a_read_only_output_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with read_only(out), pytest.raises(ConfigError) as info:
        preflight.check_output(str(out))
    assert message(info).startswith(f"The output folder {out} is not writable (")
    assert message(info).endswith(
        "): pass a folder you can write to for the videos and results.csv."
    )


def test_an_output_folder_that_cannot_be_made(tmp_path: Path) -> None:
    parent = tmp_path / "parent"
    parent.mkdir()
    with read_only(parent), pytest.raises(ConfigError) as info:
        preflight.check_output(str(parent / "a" / "b"))
    assert message(info).startswith(
        f"The output folder {parent}/a/b cannot be created: {parent} is not writable ("
    )


def test_a_good_output_folder_is_not_created_and_left_clean(tmp_path: Path) -> None:
    preflight.check_output(str(tmp_path / "new" / "videos"))
    assert not (tmp_path / "new").exists()
    preflight.check_output(str(tmp_path))
    preflight.check_output(f"file://{tmp_path}")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".sceneflow-probe")]


def test_an_fsspec_output_is_probed_and_the_probe_deleted() -> None:
    fs = fsspec.filesystem("memory")
    preflight.check_output("memory://bucket/videos")
    assert fs.find("/bucket") == []


def test_an_fsspec_output_that_cannot_be_written(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as info:
        preflight.check_output("nosuchscheme://bucket/videos")
    assert message(info).startswith(
        "The output location nosuchscheme://bucket/videos cannot be written (ValueError: "
    )
    assert message(info).endswith(
        "): check the URL and the storage's credentials, or pass a local folder."
    )


# --- SCENEFLOW_HOME and the database -----------------------------------------------------


def test_scene_flow_home_that_is_a_file(sceneflow_env: Path) -> None:
    sceneflow_env.write_text("x")
    with pytest.raises(ConfigError) as info:
        preflight.check_home()
    assert message(info) == (
        f"SCENEFLOW_HOME {sceneflow_env} is a file, not a folder: point SCENEFLOW_HOME at a "
        "folder you can write to (it is created if missing)."
    )
    # The database, when it lives in SCENEFLOW_HOME, says the same and not DATABASE_URL.
    with pytest.raises(ConfigError) as info:
        db.upgrade()
    assert message(info) == (
        f"SCENEFLOW_HOME {sceneflow_env} is a file, not a folder: point SCENEFLOW_HOME at a "
        "folder (it is created if missing)."
    )


def test_scene_flow_home_that_is_not_writable(sceneflow_env: Path) -> None:
    sceneflow_env.mkdir()
    with read_only(sceneflow_env):
        with pytest.raises(ConfigError) as info:
            preflight.check_home()
        assert message(info).startswith(f"SCENEFLOW_HOME {sceneflow_env} is not writable (")
        assert message(info).endswith("): point SCENEFLOW_HOME at a folder you can write to.")
        with pytest.raises(ConfigError) as info:
            db.upgrade()
        assert message(info).startswith(f"SCENEFLOW_HOME {sceneflow_env} is not writable (")
        assert "DATABASE_URL" not in message(info)


def test_a_missing_scene_flow_home_is_fine_and_not_made_by_the_check(sceneflow_env: Path) -> None:
    assert preflight.check_home() == sceneflow_env
    assert not sceneflow_env.exists()


def test_the_database_check_migrates_and_stores_nothing(database_url: str) -> None:
    assert preflight.check_database() == database_url
    assert job_count() == 0


@pytest.fixture
def sqlite_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    file = tmp_path / "data" / "jobs.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{file}")
    get_settings.cache_clear()
    db.upgrade()
    db.dispose_engines()  # a fresh process opens it anew
    yield file
    db.dispose_engines()


def test_a_read_only_database_file(sqlite_file: Path) -> None:
    with read_only(sqlite_file), pytest.raises(ConfigError) as info:
        preflight.check_database()
    assert message(info) == (
        f"The SQLite database {sqlite_file} is read-only (attempt to write a readonly "
        "database): make the file writable by this user, or set DATABASE_URL to a database you "
        "can write to."
    )


def test_a_database_opened_read_only(sqlite_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # What a read-only file looks like to SQLite, without needing permissions to show it.
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///file:{sqlite_file}?mode=ro&uri=true")
    get_settings.cache_clear()
    with pytest.raises(ConfigError) as info:
        preflight.check_database()
    assert message(info).startswith(f"The SQLite database {sqlite_file} is read-only (")


def test_a_read_only_database_folder(sqlite_file: Path) -> None:
    with read_only(sqlite_file.parent), pytest.raises(ConfigError) as info:
        preflight.check_database()
    assert message(info) == (
        f"The folder {sqlite_file.parent} of the SQLite database {sqlite_file} is not writable "
        "(SQLite keeps its journal beside the file): make the folder writable, or set "
        "DATABASE_URL to a database you can write to."
    )


def test_a_database_below_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "f").write_text("x")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/f/jobs.db")
    get_settings.cache_clear()
    with pytest.raises(ConfigError) as info:
        preflight.check_database()
    assert message(info) == (
        f"The SQLite database {tmp_path}/f/jobs.db cannot be created: {tmp_path}/f is a file; "
        "set DATABASE_URL to a database you can write to."
    )


# --- the key and the credentials ---------------------------------------------------------


def test_a_keyless_provider_needs_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENCRYPTION_KEY")
    get_settings.cache_clear()
    preflight.check_credentials("alice", ["local"], caps)


def test_a_provider_with_keys_needs_the_encryption_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENCRYPTION_KEY")
    get_settings.cache_clear()
    with pytest.raises(EncryptionKeyError) as info:
        preflight.check_credentials("alice", ["local", "runway"], caps)
    assert message(info) == (
        "ENCRYPTION_KEY is not set: it must be base64 of 32 bytes; make one with `sceneflow keys "
        "generate` and export it."
    )


def test_missing_and_rejected_credentials(database_url: str) -> None:
    with pytest.raises(CredentialsError) as info:
        preflight.check_credentials("alice", ["runway"], caps)
    assert message(info) == (
        "No credentials for provider 'runway' and user 'alice': run `sceneflow creds set alice "
        "runway`"
    )
    with db.session_scope() as session:
        store.put_credentials(
            session=session, user_id="alice", provider="runway", credentials={"api_key": "k"}
        )
    preflight.check_credentials("alice", ["runway"], caps)
    with db.session_scope() as session:
        store.set_validity(session=session, user_id="alice", provider="runway", is_valid=False)
    with pytest.raises(CredentialsError, match="were rejected by the provider at the last check"):
        preflight.check_credentials("alice", ["runway"], caps)


# --- the whole run -----------------------------------------------------------------------


def test_check_batch_returns_the_parsed_batch(tmp_path: Path, database_url: str) -> None:
    source = tmp_path / "p.csv"
    source.write_text(f"{HEADER}\na,a cat,16:9,3\nb,a dog,5:4,3\n")
    batch = preflight.check_batch(
        str(source),
        output_dir=str(tmp_path / "out"),
        default_provider="local",
        user_id="alice",
        provider_check=no_limits,
        capabilities_for=caps,
    )
    assert [r.row_id for r in batch.rows] == ["a"]
    assert [p.row_number for p in batch.problems] == [3]
    assert job_count() == 0


def test_check_batch_names_the_rows_that_need_missing_credentials(
    tmp_path: Path, database_url: str
) -> None:
    source = tmp_path / "p.csv"
    source.write_text(
        f"{HEADER},provider\na,x,16:9,3,local\nb,y,16:9,3,runway\nc,z,16:9,3,runway\n"
    )
    with pytest.raises(CredentialsError) as info:
        preflight.check_batch(
            str(source),
            output_dir=str(tmp_path / "out"),
            default_provider="local",
            user_id="alice",
            provider_check=no_limits,
            capabilities_for=caps,
        )
    assert message(info) == (
        "No credentials for provider 'runway' and user 'alice': run `sceneflow creds set alice "
        "runway` (runway is used by row 3 and 1 more)"
    )
    assert job_count() == 0


def test_check_batch_looks_at_the_settings_before_reading_the_csv(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("x")
    with pytest.raises(ConfigError, match="The output folder .* is a file"):
        preflight.check_batch(
            str(tmp_path / "no-such.csv"),
            output_dir=str(tmp_path / "out"),
            default_provider="local",
            user_id="alice",
            provider_check=no_limits,
            capabilities_for=caps,
        )


def test_check_single_checks_the_request_first(tmp_path: Path) -> None:
    def refuse(provider: str, request: StandardVideoRequest) -> list[str]:
        raise RequestValidationError(["duration: at most 10"], provider=provider)

    (tmp_path / "out").write_text("x")
    with pytest.raises(RequestValidationError) as info:
        preflight.check_single(
            str(tmp_path / "out"),
            user_id="alice",
            provider="runway",
            request=REQUEST,
            provider_check=refuse,
            capabilities_for=caps,
        )
    assert message(info) == "Invalid request for provider 'runway': duration: at most 10"


def test_check_single_returns_the_warnings(tmp_path: Path, database_url: str) -> None:
    warnings = preflight.check_single(
        str(tmp_path / "out"),
        user_id="alice",
        provider="local",
        request=REQUEST,
        provider_check=lambda provider, request: ["fps: not native"],
        capabilities_for=caps,
    )
    assert warnings == ["fps: not native"]
    assert job_count() == 0


def test_check_single_with_strict_refuses_the_warnings_before_any_other_check(
    tmp_path: Path,
) -> None:
    (tmp_path / "out").write_text("x")  # a bad output folder: strict is checked first
    with pytest.raises(RequestValidationError) as info:
        preflight.check_single(
            str(tmp_path / "out"),
            user_id="alice",
            provider="local",
            request=REQUEST,
            provider_check=lambda provider, request: ["fps: not native"],
            capabilities_for=caps,
            strict=True,
        )
    assert message(info).startswith(
        "Invalid request for provider 'local': fps: not native [strict: refused before"
    )


def test_check_batch_with_strict_makes_a_warned_row_invalid(
    tmp_path: Path, database_url: str
) -> None:
    def warn_seed(provider: str, request: StandardVideoRequest) -> list[str]:
        return ["seed: not sent"] if request.seed is not None else []

    source = tmp_path / "p.csv"
    source.write_text(f"{HEADER},seed\na,a cat,16:9,3,\nb,a dog,16:9,3,7\n")
    batch = preflight.check_batch(
        str(source),
        output_dir=str(tmp_path / "out"),
        default_provider="local",
        user_id="alice",
        provider_check=warn_seed,
        capabilities_for=caps,
        strict=True,
    )
    assert [r.row_id for r in batch.rows] == ["a"]
    assert [p.row_number for p in batch.problems] == [3]
    assert batch.problems[0].problems[0].startswith("seed: not sent [strict:")
    assert job_count() == 0
