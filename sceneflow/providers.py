"""The adapter contract: what every provider module implements and how it describes itself.

It belongs to the core so that the job engine can drive any adapter without importing one;
`adapters/` implements it. An adapter makes exactly one attempt per call. Retries, backoff and
deadlines belong to the Prefect tasks (`tasks/policies.py`), and errors are translated at the
adapter's edge into `sceneflow.errors`.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from sceneflow.errors import CredentialsError, RequestValidationError
from sceneflow.models import StandardVideoRequest, StandardVideoResult

__all__ = [
    "GCS_IMAGE_PROVIDERS",
    "STRICT_EXEMPT",
    "STRICT_NOTE",
    "Capabilities",
    "Credentials",
    "FieldMapping",
    "Lookup",
    "ModelCapabilities",
    "OptionSpec",
    "Support",
    "VideoAdapter",
    "check_options",
    "enforce_strict",
    "format_number",
    "is_number",
    "same_value",
    "strict_problems",
    "validate_request",
]

Support = Literal["native", "mapped", "unsupported"]


class FieldMapping(BaseModel):
    """How one StandardVideoRequest field reaches the provider."""

    support: Support
    note: str = ""


OptionType = Literal["boolean", "integer", "number", "string", "object", "array", "any"]
_WORDS = {
    "boolean": "true or false",
    "integer": "a whole number",
    "number": "a number",
    "string": "text",
    "object": "a JSON object",
    "array": "a JSON list",
    "any": "any JSON value",
}


class OptionSpec(BaseModel):
    """One provider setting a request may pass in `options`: its type and allowed values, and
    the wire field the adapter sends it in."""

    type: OptionType
    description: str
    wire: str = Field("", description="Where the adapter sends it, e.g. parameters.loop.")
    choices: list[Any] | None = None
    minimum: float | None = None
    maximum: float | None = None
    # An object's keys, each with its own spec; keys not listed are refused.
    fields: dict[str, OptionSpec] | None = None
    required: list[str] = Field(default_factory=list, description="An object's required keys.")

    def allowed(self) -> str:
        """What it takes, in words: '"std" or "pro"', 'a whole number from -10 to 10'."""
        if self.choices is not None:
            shown = [_show(c) for c in self.choices]
            return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]
        words = _WORDS[self.type]
        low = format_number(self.minimum)
        high = format_number(self.maximum)
        if low is not None and high is not None:
            words += f" from {low} to {high}"
        elif low is not None:
            words += f" of at least {low}"
        elif high is not None:
            words += f" of at most {high}"
        if self.fields:
            words += " with " + ", ".join(self.fields)
        return words

    def problems(self, path: str, value: Any, who: str) -> list[str]:
        """What is wrong with `value`, one line each naming `options.<path>`."""
        bad = [f"options.{path}: {who} takes {self.allowed()}; got {_show(value)}"]
        if self.choices is not None:
            return [] if any(same_value(value, c) for c in self.choices) else bad
        if self.type == "boolean":
            return [] if isinstance(value, bool) else bad
        if self.type == "string":
            return [] if isinstance(value, str) else bad
        if self.type in ("integer", "number"):
            if not is_number(value) or (self.type == "integer" and not float(value).is_integer()):
                return bad
            if self.minimum is not None and value < self.minimum:
                return bad
            if self.maximum is not None and value > self.maximum:
                return bad
            return []
        if self.type == "array":
            return [] if isinstance(value, list) else bad
        if self.type == "any":
            return []
        if not isinstance(value, dict):
            return bad
        found: list[str] = []
        if self.fields is not None:
            for key, item in value.items():
                spec = self.fields.get(key)
                if spec is None:
                    found.append(
                        f"options.{path}.{key}: {who} has no such key in {path}; known: "
                        + ", ".join(self.fields)
                    )
                else:
                    found += spec.problems(f"{path}.{key}", item, who)
        found += [
            f"options.{path}.{key}: {who} requires it ({self.fields[key].allowed()})"
            if self.fields and key in self.fields
            else f"options.{path}.{key}: {who} requires it"
            for key in self.required
            if key not in value
        ]
        return found


def is_number(value: Any) -> bool:
    """An int or float, not a bool (JSON's number)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def same_value(a: Any, b: Any) -> bool:
    """Equal as JSON values: 5 == 5.0, but True is not 1 and "5" is not 5."""
    if is_number(a) and is_number(b):
        return bool(a == b)
    return type(a) is type(b) and a == b


def format_number(value: float | None) -> str | None:
    """A number as a person writes it (5, not 5.0); None stays None."""
    return None if value is None else f"{value:g}"


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def check_options(
    options: Mapping[str, Any],
    specs: Mapping[str, OptionSpec],
    *,
    who: str,
    elsewhere: Mapping[str, list[str]] | None = None,
) -> list[str]:
    """Every problem with `options` against the declared `specs`, one line each: an unknown
    name (listing the known ones, and the models that offer it when `elsewhere` says), a
    wrong type or a value out of range. `who` names the provider and model in each line."""
    problems: list[str] = []
    for name, value in options.items():
        spec = specs.get(name)
        if spec is not None:
            problems += spec.problems(name, value, who)
            continue
        known = f"known: {', '.join(sorted(specs))}" if specs else "it takes no options"
        offered = (elsewhere or {}).get(name)
        hint = f"; {name!r} is an option of {', '.join(offered)}" if offered else ""
        problems.append(f"options.{name}: {who} has no option {name!r} ({known}){hint}")
    return problems


class ModelCapabilities(BaseModel):
    """What one provider model accepts. `fields` covers every request field but `model` and
    `options`; `options` declares the provider's own settings a request may pass."""

    fields: dict[str, FieldMapping]
    options: dict[str, OptionSpec] = Field(default_factory=dict)
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
    gcs_images: bool = Field(
        False,
        description="Takes a gs://BUCKET/OBJECT first frame (image_url) and has the provider "
        "read it from Cloud Storage; validate_request refuses one for any other provider.",
    )


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


# How many of a provider's newest jobs the lookup of one lost send reads at most. It proves a
# send never arrived only by reading every job created from a clock skew before it (2 minutes,
# sceneflow.jobs.submit.CLOCK_SKEW) to the moment it asks, the re-run's own new jobs included:
# a batch of 200 jobs in flight creates about 40 a second. In the drill of a SIGKILL in the
# middle of a 10,000-row batch (issue 10), reading 250 to 2,000 left 28 rows whose sends never
# arrived UNKNOWN after the re-run, and 5,000 left 5. Reading costs nothing but requests.
LOOKUP_REACH = 20_000


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
        fields it has no equivalent for (they are reported, never dropped silently). Callers
        go through `validate_request`, which adds the checks of the contract itself."""

    async def prepare(self, request: StandardVideoRequest, credentials: Credentials) -> list[str]:
        """`validate` with what it needs read first (a Replicate or fal model's published
        schema); the job engine calls it right before the send. Raises
        RequestValidationError; returns the warnings. Most adapters need nothing first
        (`adapters.base.HttpAdapter.prepare` returns `validate`'s)."""

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
        known: Collection[str] = (),
    ) -> Lookup | None:
        """Jobs created since `since` with `request`'s inputs, so a submit whose reply was lost
        resumes its job; None if the provider cannot be asked (design.md §3). `known` are
        provider ids SceneFlow holds for other jobs: never this send's, so an adapter that must
        read each candidate may skip them."""

    async def aclose(self) -> None: ...


# The fields every request carries (a request cannot leave them out), so a provider without an
# equivalent (no motion setting, an image that sets the shape) cannot be avoided by the caller:
# their warnings stay warnings under strict. Every other warning names a field the caller set.
STRICT_EXEMPT = tuple(
    name for name, field in StandardVideoRequest.model_fields.items() if field.is_required()
)
STRICT_NOTE = (
    " [strict: refused before anything is sent; leave the field out or change it, choose a "
    "provider or model that takes it, or turn strict off to send the request without it]"
)


def strict_problems(warnings: list[str]) -> list[str]:
    """The warnings strict mode refuses, as problems. A warning names its field first
    ("seed: ..."); those of the fields every request must carry (STRICT_EXEMPT) stay
    warnings."""
    return [w + STRICT_NOTE for w in warnings if w.partition(":")[0].strip() not in STRICT_EXEMPT]


def enforce_strict(warnings: list[str], *, provider: str, strict: bool) -> list[str]:
    """`warnings` as they are, or with `strict` a RequestValidationError listing every one
    strict refuses (see `strict_problems`)."""
    if strict and (problems := strict_problems(warnings)):
        raise RequestValidationError(problems, provider=provider)
    return warnings


# The providers whose Capabilities say gcs_images, named in the refusal of a gs:// image for any
# other (the core cannot read the registry; tests/adapters/test_gcs_images.py keeps this true).
GCS_IMAGE_PROVIDERS = ("vertex",)


def _contract_problems(adapter: VideoAdapter, request: StandardVideoRequest) -> list[str]:
    """What the adapter contract itself refuses, whatever the adapter's own check says."""
    url = request.image_url
    # Capabilities are read only for a gs:// image: building them costs, a CSV has many rows.
    if url and url.startswith("gs://") and not adapter.capabilities().gcs_images:
        takers = ", ".join(GCS_IMAGE_PROVIDERS)
        which = "the provider" if len(GCS_IMAGE_PROVIDERS) == 1 else "one of"
        return [
            f"image_url: {adapter.key} cannot read a gs:// image (providers that take one: "
            f"{takers}). Use an https URL it can fetch instead (for a private object, a signed "
            f"URL from `gcloud storage sign-url {url[:80]}`), a data: URL, or {which} {takers}"
        ]
    return []


def validate_request(
    adapter: VideoAdapter, request: StandardVideoRequest, *, strict: bool = False
) -> list[str]:
    """The contract's checks and the adapter's own, every problem at once; with `strict`, the
    warnings it would send the request with are refused too. Raises RequestValidationError;
    returns the warnings. Every path that validates a request goes through here."""
    problems = _contract_problems(adapter, request)
    if not problems:
        return enforce_strict(adapter.validate(request), provider=adapter.key, strict=strict)
    try:
        adapter.validate(request)
    except RequestValidationError as e:
        # Every problem at once, the contract's first. The adapter's own word on the image
        # judges a URL it was never meant to take (one says gs:// is no https URL, one that it
        # cannot read gs:// either): the contract's line says it, and what to use instead.
        refused = {p.partition(":")[0] for p in problems}
        problems += [p for p in e.problems if p.partition(":")[0] not in refused]
    raise RequestValidationError(problems, provider=adapter.key)
