"""The adapter contract: what every provider module implements and how it describes itself.

It belongs to the core so that the job engine can drive any adapter without importing one;
`adapters/` implements it. An adapter makes exactly one attempt per call. Retries, backoff and
deadlines belong to the Prefect tasks (`tasks/policies.py`), and errors are translated at the
adapter's edge into `sceneflow.errors`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from sceneflow.errors import CredentialsError
from sceneflow.models import StandardVideoRequest, StandardVideoResult

__all__ = [
    "Capabilities",
    "Credentials",
    "FieldMapping",
    "Lookup",
    "ModelCapabilities",
    "Support",
    "VideoAdapter",
]

Support = Literal["native", "mapped", "unsupported"]


class FieldMapping(BaseModel):
    """How one StandardVideoRequest field reaches the provider."""

    support: Support
    note: str = ""


class ModelCapabilities(BaseModel):
    """What one provider model accepts. `fields` covers every request field but `model`."""

    fields: dict[str, FieldMapping]
    aspect_ratios: list[str]
    durations: list[float] | None = Field(
        None, description="Allowed durations in seconds; None means any in min..max."
    )
    min_duration: float = 1
    max_duration: float = 120
    resolutions: list[str] | None = None
    text_to_video: bool = True
    image_to_video: bool = False


class Capabilities(BaseModel):
    provider: str
    default_model: str
    models: dict[str, ModelCapabilities]
    credential_fields: list[str] = Field(description="Keys the stored credential JSON must have.")
    can_cancel: bool
    connection_test: str = Field(description="What test_connection does, e.g. GET /v1/organization")
    poll_interval: float = Field(5, description="Seconds between polls at first.")
    max_poll_interval: float = 30
    deadline: float = Field(1800, description="Seconds a job may run before it is cancelled.")
    queue_deadline: float = Field(3600, description="Seconds it may wait queued, before that.")


class Credentials:
    """Decrypted credential fields. Lives in memory only: it refuses to be pickled or printed.

    Prefect persists task results and may hash task inputs by pickling; refusing to pickle turns
    an accidental persistence into a loud error instead of a key on disk.
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = dict(values)

    def get(self, name: str, default: Any = None) -> Any:
        return self._values.get(name, default)

    def require(self, name: str, *, provider: str) -> str:
        value = self._values.get(name)
        if not value or not isinstance(value, str):
            raise CredentialsError(
                f"Stored credentials for {provider!r} have no {name!r} field. Run "
                f"`sceneflow creds set USER {provider}` with JSON that includes {name!r}."
            )
        return value

    def fields(self) -> list[str]:
        return sorted(self._values)

    def redact(self, text: str) -> str:
        """`text` with every secret value replaced: some providers echo the key they refused."""
        for secret in _string_leaves(self._values):
            if len(secret) >= 8:
                text = text.replace(secret, "[redacted]")
        return text

    def __repr__(self) -> str:
        return f"Credentials(fields={self.fields()})"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("Credentials must never be pickled, cached or persisted")


def _string_leaves(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _string_leaves(item)]
    if isinstance(value, list | tuple):
        return [leaf for item in value for leaf in _string_leaves(item)]
    return []


class Lookup(BaseModel):
    """What a provider answered when asked which jobs a lost submit may have created."""

    job_ids: list[str] = Field(
        description="Jobs created since the send with the request's inputs, newest first."
    )
    complete: bool = Field(
        description="The search covered every job created since the send: finding nothing "
        "then means no job was created, so a re-send cannot pay twice."
    )


@runtime_checkable
class VideoAdapter(Protocol):
    """What every provider module implements. See README, "Adding a provider"."""

    key: str

    def capabilities(self) -> Capabilities: ...

    def validate(self, request: StandardVideoRequest) -> list[str]:
        """Raise RequestValidationError for what the provider cannot do; return warnings for
        fields it has no equivalent for (they are reported, never dropped silently)."""

    async def submit(
        self,
        request: StandardVideoRequest,
        credentials: Credentials,
        *,
        reference: str | None = None,
    ) -> str:
        """Send the job once and return the provider's job id. `reference` is SceneFlow's own
        name for this send; a provider that can store one (Kling's external_task_id) is given it
        so that `find_submitted` can ask for it by name."""

    async def status(
        self, provider_job_id: str, credentials: Credentials
    ) -> StandardVideoResult: ...

    async def cancel(self, provider_job_id: str, credentials: Credentials) -> None: ...

    async def download(
        self, result: StandardVideoResult, credentials: Credentials, destination: Path
    ) -> Path: ...

    async def test_connection(self, credentials: Credentials) -> None: ...

    async def find_submitted(
        self,
        request: StandardVideoRequest,
        credentials: Credentials,
        *,
        since: datetime,
        reference: str | None = None,
    ) -> Lookup | None:
        """Jobs created since `since` with `request`'s inputs, so a submit whose reply was lost
        resumes its job; None if the provider cannot be asked (design.md §3)."""

    async def aclose(self) -> None: ...
