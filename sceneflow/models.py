"""The standard request and result every provider speaks, and the gateway's response envelope."""

from __future__ import annotations

import re
from enum import StrEnum
from functools import lru_cache
from typing import Any, Generic, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

__all__ = [
    "AspectRatio",
    "GatewayResponse",
    "JobStatus",
    "Quality",
    "StandardVideoRequest",
    "StandardVideoResult",
    "format_validation_error",
    "gcs_bucket_problem",
    "TERMINAL_STATUSES",
]


class JobStatus(StrEnum):
    """Where a job stands. The provider reports QUEUED, PROCESSING, COMPLETED, FAILED or
    CANCELLED; the ledger (`sceneflow.jobs.ledger`) adds the states of its own that make the
    promises hold: the send recorded before it leaves, a lost reply, the provider done but the
    video not yet verified. The legal moves between them are drawn in the ledger."""

    QUEUED = "QUEUED"
    # The send is recorded and may be on its way; no provider job id is known yet.
    SUBMITTING = "SUBMITTING"
    PROCESSING = "PROCESSING"
    # The provider finished the job; the video is not yet verified in its final place.
    GENERATED = "GENERATED"
    COMPLETED = "COMPLETED"
    # The provider finished but the video could not be fetched; a re-run fetches it again.
    DOWNLOAD_FAILED = "DOWNLOAD_FAILED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"
    # The submit may or may not have reached the provider (the reply was lost); see design §3.
    UNKNOWN = "UNKNOWN"


# The states a run ends a job in: nothing more happens to it in this run. UNKNOWN,
# DOWNLOAD_FAILED and TIMED_OUT keep their provider job, so a later run can take them further.
TERMINAL_STATUSES = frozenset(
    {
        JobStatus.COMPLETED,
        JobStatus.FAILED,
        JobStatus.CANCELLED,
        JobStatus.TIMED_OUT,
        JobStatus.UNKNOWN,
        JobStatus.DOWNLOAD_FAILED,
    }
)


AspectRatio = Literal["16:9", "9:16", "1:1", "4:3", "3:4", "21:9"]
Quality = Literal["draft", "standard", "high"]

_IMAGE_FORMS = (
    "an http(s) URL, a data: URL, or a Cloud Storage object gs://BUCKET/OBJECT "
    "(such as gs://my-bucket/frames/first.png)"
)
# https://cloud.google.com/storage/docs/buckets#naming: lowercase letters, digits, -, _ and .,
# a letter or digit at each end; 3 to 63 characters, or up to 222 with dots, each dot-separated
# part at most 63. The rules for names Google reserves ("goog" prefix, "google") are rules for
# creating a bucket, not for naming one that exists, so they are not checked here.
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*[a-z0-9]")
_DOTTED_QUAD = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")


def gcs_bucket_problem(bucket: str) -> str | None:
    """What makes `bucket` not a Cloud Storage bucket name, or None when it is one."""
    if not bucket:
        return "it names no bucket"
    if _BUCKET_NAME.fullmatch(bucket) is None:
        return (
            f"the bucket name {bucket!r} must be lowercase letters, digits, -, _ and ., "
            "starting and ending with a letter or digit"
        )
    parts = bucket.split(".")
    if not 3 <= len(bucket) <= (222 if len(parts) > 1 else 63):
        return f"the bucket name {bucket!r} must be 3 to 63 characters (up to 222 with dots)"
    if "" in parts or any(len(part) > 63 for part in parts):
        return f"the bucket name {bucket!r} must have 1 to 63 characters between its dots"
    if _DOTTED_QUAD.fullmatch(bucket):
        return f"the bucket name {bucket!r} is an IP address, which Cloud Storage refuses"
    return None


def _gcs_object_problem(url: str) -> str | None:
    """What makes `url` not gs://BUCKET/OBJECT, by Cloud Storage's naming rules
    (https://cloud.google.com/storage/docs/objects#naming), or None."""
    bucket, slash, name = url.removeprefix("gs://").partition("/")
    if problem := gcs_bucket_problem(bucket):
        return f"{url[:80]!r} is not a Cloud Storage object: {problem}"
    if not slash or not name:
        return f"{url[:80]!r} names a bucket but no object"
    if name in (".", "..") or "\r" in name or "\n" in name or len(name.encode()) > 1024:
        return (
            f"{url[:80]!r} is not a Cloud Storage object: an object name is 1 to 1,024 bytes, "
            "not . or .., without line breaks"
        )
    return None


_RESOLUTION_NAMES = {"480p": 480, "720p": 720, "1080p": 1080, "4k": 2160}
_WXH = re.compile(r"^(\d{2,5})x(\d{2,5})$")


# Both are pure functions of a few values that repeat from row to row of a prompt CSV, and every
# row asks them (the local provider's check asks the frame size). Cached, validating a request
# took 24.8k instructions instead of 28.3k and a frame size 3.6k instead of 11.3k (cachegrind,
# 720p and 640x360 in turn; issue 10).
@lru_cache(maxsize=1024)
def _resolution(text: str) -> str:
    value = text.strip().lower()
    if value in _RESOLUTION_NAMES:
        return value
    m = _WXH.match(value)
    if m and 16 <= int(m[1]) <= 7680 and 16 <= int(m[2]) <= 7680:
        return value
    raise ValueError(
        'must be "WxH" with each side 16 to 7680 (such as "1920x1080"), '
        "or one of 480p, 720p, 1080p, 4k"
    )


@lru_cache(maxsize=1024)
def _frame_size(resolution: str, aspect_ratio: str) -> tuple[int, int]:
    m = _WXH.match(resolution)
    if m:
        w, h = int(m.group(1)), int(m.group(2))
    else:
        short = _RESOLUTION_NAMES[resolution]
        a, b = (int(x) for x in aspect_ratio.split(":"))
        if a >= b:
            w, h = round(short * a / b), short
        else:
            w, h = short, round(short * b / a)
    return w - w % 2, h - h % 2


def _is_none(value: Any) -> bool:
    return value is None


def _is_empty(value: Any) -> bool:
    return not value


class StandardVideoRequest(BaseModel):
    """One video to generate, in provider-neutral terms."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    prompt: str = Field(max_length=4000, description="What the video shows. 1 to 4,000 characters.")
    negative_prompt: str | None = Field(None, max_length=4000, description="What to avoid.")
    aspect_ratio: AspectRatio = Field(description="Frame shape.")
    motion_intensity: int = Field(ge=1, le=10, description="How much moves: 1 (still) to 10.")
    duration: float = Field(5, ge=1, le=120, description="Length in seconds, 1 to 120.")
    resolution: str = Field(
        "720p", description='"WxH" such as "1920x1080", or one of 480p, 720p, 1080p, 4k.'
    )
    style: str | None = Field(None, max_length=200, description="A visual style hint.")
    quality: Quality = Field("standard", description="draft, standard or high.")
    fps: int = Field(24, ge=6, le=60, description="Frames per second, 6 to 60.")
    seed: int | None = Field(None, ge=0, le=999_999_999, description="0 to 999999999.")
    image_url: str | None = Field(
        None,
        description="Optional first frame: an http(s) URL, a data: URL, or gs://BUCKET/OBJECT "
        "for a provider that reads Cloud Storage (vertex).",
    )
    model: str | None = Field(None, description="Provider model id; each provider has a default.")
    # A request that sets neither audio nor options serialises as it did before they existed,
    # so its idempotency key (a hash of this JSON) and stored jobs stay the same. Left out per
    # field (`exclude_if`) rather than by a wrapping model serializer: the wrapper built a dict
    # in Python for every dump, which made model_dump_json 2.5 times as slow (5.7 against
    # 2.3 µs), and a CSV's rows are each dumped for their occurrence count (issue 10).
    audio: bool | None = Field(
        None,
        exclude_if=_is_none,
        description="Sound on (true) or off (false); unset leaves it to the provider's default.",
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        exclude_if=_is_empty,
        description="The provider's own settings by name, checked against the options it "
        "declares (`sceneflow providers KEY` lists them).",
    )

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return v

    @field_validator("options")
    @classmethod
    def _option_names(cls, v: dict[str, Any]) -> dict[str, Any]:
        blank = [name for name in v if not name.strip()]
        if blank:
            raise ValueError("option names must not be blank")
        return {name.strip(): value for name, value in v.items()}

    def __hash__(self) -> int:
        # Frozen, so hashable as before `options` (a dict) joined the fields: by its JSON.
        return hash(self.model_dump_json())

    @field_validator("resolution")
    @classmethod
    def _resolution(cls, v: str) -> str:
        return _resolution(v)

    @field_validator("image_url")
    @classmethod
    def _image_url(cls, v: str | None) -> str | None:
        if v and v.startswith("gs://"):
            if problem := _gcs_object_problem(v):
                raise ValueError(f"{problem}; allowed: {_IMAGE_FORMS}")
        elif v and not v.startswith(("http://", "https://", "data:")):
            raise ValueError(f"must be {_IMAGE_FORMS}")
        return v or None

    def frame_size(self) -> tuple[int, int]:
        """Width and height in pixels, even-numbered (H.264 needs even sides)."""
        return _frame_size(self.resolution, self.aspect_ratio)


class StandardVideoResult(BaseModel):
    """Where a generation stands, in provider-neutral terms."""

    status: JobStatus
    provider_job_id: str | None = None
    progress: float = Field(0, ge=0, le=100)
    estimated_time_remaining: float | None = None
    video_url: str | None = None
    output_path: str | None = None
    error_message: str | None = None
    cost: float | None = None
    provider_details: dict[str, Any] = Field(default_factory=dict)


T = TypeVar("T")


class GatewayResponse(BaseModel, Generic[T]):
    """What application code gets back from `VideoGenerationGateway`."""

    success: bool
    data: T | None = None
    error: str | None = None
    message: str | None = None


# Pydantic names only the bound that was broken; these say the whole allowed range.
_ALLOWED = {
    "motion_intensity": "a whole number from 1 to 10",
    "duration": "1 to 120 seconds",
    "fps": "a whole number from 6 to 60",
    "seed": "a whole number from 0 to 999999999",
}


def format_validation_error(exc: ValidationError) -> list[str]:
    """One readable line per problem, each naming the field: `duration: must be ...`."""
    lines = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "request"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "literal_error":
            msg = f"must be one of {err['ctx']['expected']}"
        elif err["type"] == "extra_forbidden":
            msg = "is not a known field; allowed: " + ", ".join(StandardVideoRequest.model_fields)
        elif field in _ALLOWED and err["type"] not in ("missing", "frozen_instance", "value_error"):
            msg = f"{msg}; allowed: {_ALLOWED[field]}"
        lines.append(f"{field}: {msg}")
    return lines
