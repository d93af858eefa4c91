"""Checked before anything is sent or started: every problem that would doom a whole run, found
while it still costs nothing and stores nothing.

Each check raises a `ConfigError` (or a subclass) whose message is one line that names the
setting, file, column or row and says what to do. No Prefect and no adapters: what depends on a
provider comes in as an argument, so the CLI, the gateway and a deployment can all call these.

    check_batch:  output folder, SCENEFLOW_HOME, database, the CSV (file, header, every row),
                  then ENCRYPTION_KEY and the credentials of every provider its valid rows use
    check_single: the request against the provider, then the same settings for one provider
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import fsspec

from sceneflow import credentials, db, prompts, vault
from sceneflow.errors import ConfigError, CredentialsError, EncryptionKeyError, NotFoundError
from sceneflow.models import StandardVideoRequest
from sceneflow.prompts import PromptBatch
from sceneflow.providers import Capabilities, enforce_strict
from sceneflow.settings import get_settings
from sceneflow.storage import is_remote

__all__ = [
    "ProviderCheck",
    "CapabilitiesFor",
    "check_batch",
    "check_credentials",
    "check_database",
    "check_home",
    "check_output",
    "check_single",
]

# (provider, request) -> warnings; raises RequestValidationError / UnknownProviderError.
ProviderCheck = Callable[[str, StandardVideoRequest], list[str]]
# provider -> its capabilities (which credential fields it needs, if any).
CapabilitiesFor = Callable[[str], Capabilities]


def _reason(error: BaseException) -> str:
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return " ".join(str(text).split()).rstrip(".")[:200]


def _probe_folder(folder: Path) -> OSError | None:
    """Create and remove a file in `folder`: the file system's answer, which (unlike the mode
    bits) holds for root, ACLs and read-only mounts alike."""
    probe = folder / f".sceneflow-probe-{uuid.uuid4().hex}"
    try:
        probe.touch(exist_ok=False)
        probe.unlink()
    except OSError as e:
        return e
    return None


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_folder(path: Path, name: str, fix: str) -> Path:
    """A folder that is, or can be made, writable; creates nothing. `name` starts the message."""
    where = path.expanduser().resolve()
    if where.exists() and not where.is_dir():
        raise ConfigError(
            f"{name} {where} is a file, not a folder: {fix} (it is created if missing)."
        )
    found = _nearest_existing(where)
    if not found.is_dir():
        raise ConfigError(f"{name} {where} cannot be created: {found} is a file; {fix}.")
    problem = _probe_folder(found)
    if problem is not None:
        if found == where:
            raise ConfigError(f"{name} {where} is not writable ({_reason(problem)}): {fix}.")
        raise ConfigError(
            f"{name} {where} cannot be created: {found} is not writable ({_reason(problem)}); "
            f"{fix}."
        )
    return where


def check_output(output_dir: str) -> None:
    """The output folder takes files: a local folder (or one that can be made), or an fsspec URL
    where a probe object can be written and deleted."""
    if not output_dir.strip():
        raise ConfigError("The output folder is empty: pass a folder or an fsspec URL.")
    if not is_remote(output_dir):
        _check_folder(
            Path(output_dir.removeprefix("file://")),
            "The output folder",
            "pass a folder you can write to for the videos and results.csv",
        )
        return
    probe = f"{output_dir.rstrip('/')}/.sceneflow-probe-{uuid.uuid4().hex}"
    try:
        fs, path = fsspec.core.url_to_fs(probe)
        with fs.open(path, "wb") as fh:
            fh.write(b"")
        fs.rm(path)
    # fsspec backends raise what their SDK raises (ImportError for a missing s3fs, botocore's
    # ClientError, ValueError for a bad URL); any of them means the videos cannot go there.
    except Exception as e:
        raise ConfigError(
            f"The output location {output_dir} cannot be written ({type(e).__name__}: "
            f"{_reason(e)}): check the URL and the storage's credentials, or pass a local folder."
        ) from e


def check_home() -> Path:
    """SCENEFLOW_HOME, the data directory (the default database, staged downloads, the local
    provider's jobs), is a folder this user can write to, or can be made one."""
    return _check_folder(
        get_settings().home,
        "SCENEFLOW_HOME",
        "point SCENEFLOW_HOME at a folder you can write to",
    )


def check_database() -> str:
    """The database opens, is migrated, and takes writes to the job table (nothing is stored)."""
    return db.check_writable()


def check_credentials(
    user_id: str, providers: Iterable[str], capabilities_for: CapabilitiesFor
) -> None:
    """ENCRYPTION_KEY and `user_id`'s stored credentials open for every provider that needs
    keys; what was decrypted is dropped at once. A keyless provider (local) needs neither."""
    keyed = [caps for caps in map(capabilities_for, providers) if caps.credential_fields]
    if not keyed:
        return
    vault.Keyring.from_settings()
    for caps in keyed:
        credentials.open_credentials(user_id, caps)


def _where(batch: PromptBatch, provider: str) -> str:
    rows = [r.row_number for r in batch.rows if r.provider == provider]
    more = f" and {len(rows) - 1} more" if len(rows) > 1 else ""
    return f"{provider} is used by row {rows[0]}{more}"


def check_batch(
    csv_source: str,
    *,
    output_dir: str,
    default_provider: str,
    user_id: str,
    provider_check: ProviderCheck,
    capabilities_for: CapabilitiesFor,
    strict: bool = False,
) -> PromptBatch:
    """Every check a batch needs before it starts, in order; returns the parsed batch. Bad rows
    are the batch's to report (results.csv), so they do not fail this; a CSV no row of which can
    be read at all does. With `strict`, a row the provider would run without a field it sets is
    a bad row (see `prompts.parse_prompts`)."""
    check_output(output_dir)
    check_home()
    check_database()
    batch = prompts.parse_prompts(
        prompts.read_csv_text(csv_source),
        default_provider=default_provider,
        provider_check=provider_check,
        strict=strict,
    )
    for provider in sorted({row.provider for row in batch.rows}):
        try:
            check_credentials(user_id, [provider], capabilities_for)
        except (CredentialsError, EncryptionKeyError, NotFoundError) as e:
            # The same class, so callers can still tell a key problem from a credentials one.
            raise type(e)(f"{e} ({_where(batch, provider)})") from e
    return batch


def check_single(
    output_dir: str,
    *,
    user_id: str,
    provider: str,
    request: StandardVideoRequest,
    provider_check: ProviderCheck,
    capabilities_for: CapabilitiesFor,
    strict: bool = False,
) -> list[str]:
    """Every check one video needs before it is sent, in order; returns the provider's
    warnings. With `strict` those warnings (but for fields every request carries) raise
    RequestValidationError instead (`sceneflow.providers.enforce_strict`)."""
    warnings = enforce_strict(provider_check(provider, request), provider=provider, strict=strict)
    check_output(output_dir)
    check_home()
    check_database()
    check_credentials(user_id, [provider], capabilities_for)
    return warnings
