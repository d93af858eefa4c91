"""Any model by its published input schema: Replicate's and fal's models describe their inputs
in OpenAPI, so a model outside an adapter's built-in table is mapped from that description.

`InputSchema.from_openapi` reads one input object out of an OpenAPI document (resolving the
`$ref`/`allOf` enums Cog writes for Replicate models and the `anyOf: [X, null]` optionals
pydantic writes for fal endpoints). `SchemaModel` then decides, once per schema, which input
each StandardVideoRequest field goes to, by name and type:

    prompt          prompt, text_prompt, text                        (string)
    negative_prompt negative_prompt, negative, neg_prompt            (string)
    aspect_ratio    aspect_ratio, ratio, aspect                      (string), else width/height
    duration        duration, duration_seconds, seconds, video_length, length
                    (integer, number or an enum such as "5"/"5s"), else num_frames (+ fps)
    resolution      resolution, video_resolution ("720p"-style tiers), else width + height
    seed            seed                                             (integer)
    fps             fps, frames_per_second, frame_rate               (integer or number)
    image_url       image_url, image, start_image, first_frame_image, first_frame, ...
    style           folded into the prompt

    audio           generate_audio, audio, with_audio, enable_audio, sound  (boolean)

and `build()` turns one request into the model's input JSON, checking each value against the
schema's enums, ranges and types first and reporting every problem at once, naming the request
field, the model's input and what it allows. Every other input of the schema is an option: a
request sets it in `options` under the input's own name, checked against the schema the same
way; an unset `audio` leaves the model's sound switch at its default.

`SchemaCache` keeps parsed schemas for the life of the process, so many submits to one model
make one schema fetch.
"""

from __future__ import annotations

import asyncio
import math
import weakref
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, get_args

from adapters.base import compose_prompt, unsupported_warning
from adapters.fields import REQUEST_FIELDS, mapped, native, unsupported
from sceneflow.errors import RequestValidationError
from sceneflow.models import AspectRatio, StandardVideoRequest
from sceneflow.providers import (
    FieldMapping,
    ModelCapabilities,
    OptionSpec,
    format_number,
    is_number,
    same_value,
)

__all__ = [
    "InputSchema",
    "SchemaCache",
    "SchemaField",
    "SchemaModel",
    "SchemaReport",
    "pending_schema_warning",
]

RATIOS: tuple[str, ...] = get_args(AspectRatio)
_TIER_ALIASES = {"4k": "2160p", "2k": "1440p"}

# Request field -> the input names that may hold it, best first, and the JSON types they may
# have (None: the schema does not say).
_TEXT = ("string", None)
_NUMBER = ("integer", "number", None)
PROMPT = ("prompt", "text_prompt", "text")
NEGATIVE = ("negative_prompt", "negative", "neg_prompt")
ASPECT = ("aspect_ratio", "ratio", "aspect")
DURATION = ("duration", "duration_seconds", "seconds", "video_length", "length")
FRAMES = ("num_frames", "frames", "frame_count", "num_video_frames")
FPS = ("fps", "frames_per_second", "frame_rate")
RESOLUTION = ("resolution", "video_resolution")
SEED = ("seed",)
IMAGE = (
    "image_url",
    "image",
    "start_image",
    "first_frame_image",
    "first_frame",
    "start_image_url",
    "first_frame_url",
    "init_image",
    "input_image",
)
AUDIO = ("generate_audio", "audio", "with_audio", "enable_audio", "sound")


@dataclass(frozen=True)
class SchemaField:
    """One input of a model, with the limits its schema states."""

    name: str
    type: str | None = None
    enum: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: float | None = None
    exclusive_maximum: float | None = None
    multiple_of: float | None = None
    default: Any = None
    has_default: bool = False
    required: bool = False
    format: str | None = None

    def allowed(self) -> str:
        """What the input takes, in words: '5, 10', 'whole numbers from 2 to 12', 'text'."""
        if self.enum is not None:
            return ", ".join(_show(v) for v in self.enum)
        kind = {
            "integer": "whole numbers",
            "number": "numbers",
            "boolean": "true or false",
            "string": "text",
        }
        words = kind.get(self.type or "", self.type or "any value")
        low = format_number(self.minimum if self.minimum is not None else self.exclusive_minimum)
        high = format_number(self.maximum if self.maximum is not None else self.exclusive_maximum)
        if low is not None and high is not None:
            words += f" from {low} to {high}"
        elif low is not None:
            words += f" from {low}"
        elif high is not None:
            words += f" up to {high}"
        if self.exclusive_minimum is not None or self.exclusive_maximum is not None:
            words += " (ends excluded)"
        if self.multiple_of is not None:
            words += f", multiples of {format_number(self.multiple_of)}"
        return words

    def accepts(self, value: Any) -> bool:
        if self.enum is not None:
            return any(same_value(value, v) for v in self.enum)
        if self.type == "integer" and not (is_number(value) and float(value).is_integer()):
            return False
        if self.type == "number" and not is_number(value):
            return False
        if self.type == "string" and not isinstance(value, str):
            return False
        if self.type == "boolean" and not isinstance(value, bool):
            return False
        if is_number(value):
            if self.minimum is not None and value < self.minimum:
                return False
            if self.maximum is not None and value > self.maximum:
                return False
            if self.exclusive_minimum is not None and value <= self.exclusive_minimum:
                return False
            if self.exclusive_maximum is not None and value >= self.exclusive_maximum:
                return False
            if self.multiple_of and not math.isclose(
                value / self.multiple_of, round(value / self.multiple_of)
            ):
                return False
        return True

    def describe(self) -> str:
        """'duration: 5, 10 (default 5)' for the mapping report."""
        text = f"{self.name}: {self.allowed()}"
        if self.has_default:
            text += f" (default {_show(self.default)})"
        elif self.required:
            text += " (required)"
        return text


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


@dataclass(frozen=True)
class InputSchema:
    """A model's input object: its fields by name, in the schema's order."""

    fields: dict[str, SchemaField]

    @classmethod
    def from_openapi(cls, node: Mapping[str, Any], document: Mapping[str, Any]) -> InputSchema:
        """Read the object schema `node`, resolving references against `document`."""
        obj = _resolve(node, document)
        properties = obj.get("properties")
        if not isinstance(properties, dict):
            raise ValueError("the input schema has no properties")
        required = set(obj.get("required") or [])
        order = obj.get("x-fal-order-properties")
        names = list(properties)
        if isinstance(order, list):
            names = [n for n in order if n in properties] + [n for n in names if n not in order]
        else:
            position = {n: i for i, n in enumerate(names)}
            names.sort(key=lambda n: _order(properties[n], position[n]))
        return cls({name: _field(name, properties[name], document, required) for name in names})


def _order(node: Any, position: int) -> tuple[float, int]:
    order = node.get("x-order") if isinstance(node, dict) else None
    return (float(order) if isinstance(order, int | float) else math.inf, position)


def _pointer(ref: str, document: Mapping[str, Any]) -> Mapping[str, Any]:
    if not ref.startswith("#/"):
        raise ValueError(f"reference {ref!r} points outside the document")
    target: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(target, dict) or part not in target:
            raise ValueError(f"reference {ref!r} does not resolve")
        target = target[part]
    if not isinstance(target, dict):
        raise ValueError(f"reference {ref!r} is not a schema")
    return target


def _resolve(node: Any, document: Mapping[str, Any], depth: int = 0) -> dict[str, Any]:
    """One flat schema: `$ref` followed, `allOf` merged, `anyOf`/`oneOf` with null made
    nullable. Alternatives of different kinds leave the type unstated."""
    if depth > 20:
        raise ValueError("the schema's references go round in a circle")
    if not isinstance(node, dict):
        return {}
    out = {k: v for k, v in node.items() if k not in ("$ref", "allOf", "anyOf", "oneOf")}
    merged: dict[str, Any] = {}
    if isinstance(node.get("$ref"), str):
        merged |= _resolve(_pointer(node["$ref"], document), document, depth + 1)
    for part in node.get("allOf") or []:
        merged |= _resolve(part, document, depth + 1)
    options = [
        _resolve(part, document, depth + 1)
        for part in (node.get("anyOf") or node.get("oneOf") or [])
    ]
    kept = [o for o in options if o.get("type") != "null"]
    if len(kept) < len(options):
        out["nullable"] = True
    if len(kept) == 1:
        merged |= kept[0]
    elif kept and all("enum" in o for o in kept):
        merged["enum"] = [v for o in kept for v in o["enum"]]
    # The property's own keys (default, description) win over what it refers to.
    return merged | out


def _field(name: str, node: Any, document: Mapping[str, Any], required: set[str]) -> SchemaField:
    flat = _resolve(node, document)
    kind = flat.get("type")
    if isinstance(kind, list):  # OpenAPI 3.1: ["integer", "null"]
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
    enum = flat.get("enum")

    def number(key: str) -> float | None:
        value = flat.get(key)
        return float(value) if isinstance(value, int | float) and value is not True else None

    low, high = number("minimum"), number("maximum")
    # OpenAPI 3.0 writes exclusiveMinimum: true beside minimum; 3.1 gives the bound itself.
    ex_low, ex_high = number("exclusiveMinimum"), number("exclusiveMaximum")
    if flat.get("exclusiveMinimum") is True:
        low, ex_low = None, low
    if flat.get("exclusiveMaximum") is True:
        high, ex_high = None, high
    return SchemaField(
        name=name,
        type=kind if isinstance(kind, str) else None,
        enum=tuple(v for v in enum if v is not None) if isinstance(enum, list) else None,
        minimum=low,
        maximum=high,
        exclusive_minimum=ex_low,
        exclusive_maximum=ex_high,
        multiple_of=number("multipleOf"),
        default=flat.get("default"),
        has_default="default" in flat and flat["default"] is not None,
        required=name in required,
        format=flat.get("format") if isinstance(flat.get("format"), str) else None,
    )


@dataclass
class SchemaReport:
    """What `sceneflow providers KEY --model M` prints: where each field goes and why."""

    model: str
    source: str
    capabilities: ModelCapabilities
    unused: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class SchemaModel:
    """The mapping of the standard request onto one model's input schema."""

    def __init__(self, who: str, schema: InputSchema, *, provider: str, source: str) -> None:
        self.who = who  # "replicate model owner/name", used in every message
        self.schema = schema
        self.provider = provider
        self.source = source
        self.notes: list[str] = []
        f = schema.fields
        self.prompt = self._pick(PROMPT, _TEXT)
        self.negative = self._pick(NEGATIVE, _TEXT)
        self.aspect = self._pick(ASPECT, _TEXT)
        self.duration = self._pick(DURATION, ("integer", "number", "string", None))
        if self.duration is not None and self.duration.type == "string" and not self.duration.enum:
            self.notes.append(
                f"input {self.duration.name!r} is free text; the duration is sent as "
                'seconds written out ("5")'
            )
        self.frames = None if self.duration else self._pick(FRAMES, ("integer",))
        self.fps = self._pick(FPS, _NUMBER)
        if self.frames is not None and self.fps is None:
            self.notes.append(
                f"duration: input {self.frames.name!r} is worked out at the request's fps; the "
                "schema names no frame rate, so the clip may play longer or shorter"
            )
        self.resolution = self._pick(RESOLUTION, _TEXT)
        width, height = f.get("width"), f.get("height")
        self.size: tuple[SchemaField, SchemaField] | None = None
        if width is not None and height is not None and self.resolution is None:
            if width.type == height.type == "integer":
                self.size = (width, height)
        self.seed = self._pick(SEED, _NUMBER)
        self.image = self._pick(IMAGE, _TEXT)
        self.audio = self._pick(AUDIO, ("boolean",))
        if self.audio is not None:
            default = f" (default {_show(self.audio.default)})" if self.audio.has_default else ""
            self.notes.append(
                f"audio: the model has a switch, input {self.audio.name!r}{default}; the "
                "request's audio sets it, and unset leaves the model's default"
            )

    def _pick(self, names: tuple[str, ...], kinds: tuple[str | None, ...]) -> SchemaField | None:
        for name in names:
            candidate = self.schema.fields.get(name)
            if candidate is None:
                continue
            if candidate.type in kinds:
                return candidate
            self.notes.append(
                f"input {name!r} is {candidate.type}, not {' or '.join(map(str, kinds[:2]))}; "
                "SceneFlow does not fill it"
            )
        return None

    # -- what the model can do ------------------------------------------------------------

    def slots(self) -> dict[str, str]:
        """Input name -> the request field that fills it."""
        pairs = [
            ("prompt", self.prompt),
            ("negative_prompt", self.negative),
            ("aspect_ratio", self.aspect),
            ("duration", self.duration or self.frames),
            ("fps", self.fps),
            ("resolution", self.resolution),
            ("seed", self.seed),
            ("image_url", self.image),
            ("audio", self.audio),
        ]
        found = {slot.name: request_field for request_field, slot in pairs if slot is not None}
        if self.size is not None:
            found |= {self.size[0].name: "resolution", self.size[1].name: "resolution"}
        return found

    def used(self) -> set[str]:
        return set(self.slots())

    def field_mappings(self) -> dict[str, FieldMapping]:
        def native_or(slot: SchemaField | None, missing: str) -> FieldMapping:
            if slot is None:
                return unsupported(missing)
            return native(f"input {slot.name!r}: {slot.allowed()}")

        not_in_schema = "not sent: the model's schema has no such input; validate() warns"
        table = {
            "prompt": native_or(self.prompt, "refused: the model's schema has no prompt input"),
            "negative_prompt": native_or(self.negative, not_in_schema),
            "style": mapped("appended to the prompt"),
            "motion_intensity": unsupported("not sent; validate() warns"),
            "quality": unsupported("not sent; choose the model for the quality instead"),
            "seed": native_or(self.seed, not_in_schema),
            "fps": native_or(self.fps, not_in_schema),
        }
        if self.aspect is not None:
            table["aspect_ratio"] = native_or(self.aspect, "")
        elif self.size is not None:
            table["aspect_ratio"] = mapped("sent as width and height, with the resolution")
        else:
            table["aspect_ratio"] = unsupported(
                "not sent: the model's schema has no aspect input; the model picks the shape"
            )
        if self.duration is not None:
            if self.duration.type == "string" or any(
                isinstance(v, str) for v in self.duration.enum or ()
            ):
                table["duration"] = mapped(
                    f"input {self.duration.name!r} as text: {self.duration.allowed()}"
                )
            else:
                table["duration"] = native_or(self.duration, "")
        elif self.frames is not None:
            fps = f"input {self.fps.name!r}" if self.fps else "the request's fps"
            table["duration"] = mapped(
                f"input {self.frames.name!r} = duration x fps ({fps}); "
                f"{self.frames.name}: {self.frames.allowed()}"
            )
        else:
            table["duration"] = unsupported(
                "not sent: the model's schema has no duration input; the clip has the "
                "model's own length"
            )
        if self.resolution is not None:
            table["resolution"] = mapped(
                f"input {self.resolution.name!r} by the frame's short side: "
                f"{self.resolution.allowed()}"
            )
        elif self.size is not None:
            w, h = self.size
            table["resolution"] = mapped(
                f"inputs {w.name!r} and {h.name!r}, the frame size for the aspect ratio: "
                f"{w.name} {w.allowed()}, {h.name} {h.allowed()}"
            )
        else:
            table["resolution"] = unsupported(not_in_schema)
        if self.image is not None:
            need = " (required)" if self.image.required and not self.image.has_default else ""
            table["image_url"] = native(f"input {self.image.name!r}{need}")
        else:
            table["image_url"] = unsupported("refused: the model's schema has no image input")
        if self.audio is not None:
            default = f", default {_show(self.audio.default)}" if self.audio.has_default else ""
            table["audio"] = native(
                f"input {self.audio.name!r}: true or false; unset: not sent{default}"
            )
        else:
            table["audio"] = unsupported(
                "not sent: the model's schema has no audio switch; validate() warns when set"
            )
        # A request field this module does not know yet (one added since) is reported, not lost.
        return {
            name: table.get(name, unsupported("not mapped from model schemas yet; not sent"))
            for name in REQUEST_FIELDS
        }

    def capabilities(self) -> ModelCapabilities:
        durations: list[float] | None = None
        low, high = 1.0, 120.0
        if self.duration is not None and self.duration.enum:
            durations = sorted({s for v in self.duration.enum if (s := _seconds(v)) is not None})
            if durations:
                low, high = durations[0], durations[-1]
        elif self.duration is not None:
            for bound in (self.duration.minimum, self.duration.exclusive_minimum):
                low = max(low, bound) if bound is not None else low
            for bound in (self.duration.maximum, self.duration.exclusive_maximum):
                high = min(high, bound) if bound is not None else high
        elif self.frames is not None:
            fps = self._default_fps(24)
            if self.frames.minimum is not None:
                low = max(low, self.frames.minimum / fps)
            if self.frames.maximum is not None:
                high = min(high, self.frames.maximum / fps)
        ratios = list(RATIOS)
        if self.aspect is not None and self.aspect.enum is not None:
            ratios = [r for r in RATIOS if r in self.aspect.enum]
        resolutions = None
        if self.resolution is not None and self.resolution.enum:
            resolutions = [str(v) for v in self.resolution.enum]
        image_required = (
            self.image is not None and self.image.required and not self.image.has_default
        )
        return ModelCapabilities(
            fields=self.field_mappings(),
            options=self.options(),
            aspect_ratios=ratios,
            durations=durations,
            min_duration=round(low, 2),
            max_duration=round(high, 2),
            resolutions=resolutions,
            text_to_video=not image_required,
            image_to_video=self.image is not None,
        )

    def options(self) -> dict[str, OptionSpec]:
        """The inputs no standard field fills, as options a request may set by input name."""
        used = self.used()
        return {
            name: _option_spec(slot)
            for name, slot in self.schema.fields.items()
            if name not in used
        }

    def report(self, model: str) -> SchemaReport:
        used = self.used()
        unused = [f.describe() for name, f in self.schema.fields.items() if name not in used]
        return SchemaReport(
            model=model,
            source=self.source,
            capabilities=self.capabilities(),
            unused=unused,
            notes=list(self.notes),
        )

    def _default_fps(self, fallback: float) -> float:
        if self.fps is not None and self.fps.has_default and is_number(self.fps.default):
            return float(self.fps.default)
        return fallback

    # -- one request ----------------------------------------------------------------------

    def build(self, request: StandardVideoRequest) -> tuple[dict[str, Any], list[str]]:
        """The model's input JSON and the warnings, or RequestValidationError with every
        problem (each names the request field, the model's input and what it allows)."""
        problems: list[str] = []
        inputs: dict[str, Any] = {}
        given = {f for f in request.model_fields_set if getattr(request, f) is not None}

        def put(request_field: str, slot: SchemaField, value: Any, shown: str = "") -> None:
            if slot.accepts(value):
                inputs[slot.name] = value
                return
            got = shown or _show(value)
            problems.append(
                f"{request_field}: {self.who} takes {slot.allowed()} in its input "
                f"{slot.name!r}; got {got}"
            )

        if self.prompt is None:
            names = ", ".join(self.schema.fields) or "none"
            problems.append(
                f"prompt: {self.who} has no text prompt input (its inputs: {names}); "
                "SceneFlow can only drive models that take a prompt"
            )
        else:
            put("prompt", self.prompt, compose_prompt(request))
        if request.negative_prompt is not None and self.negative is not None:
            put("negative_prompt", self.negative, request.negative_prompt)
        if self.aspect is not None:
            put("aspect_ratio", self.aspect, request.aspect_ratio, request.aspect_ratio)
        fps = self._fps(request, given, put)
        self._duration(request, fps, put, problems)
        self._resolution(request, inputs, problems)
        if request.seed is not None and self.seed is not None:
            put("seed", self.seed, request.seed)
        if request.image_url:
            if self.image is None:
                problems.append(
                    f"image_url: {self.who} takes no first frame (its schema has no image "
                    "input); leave image_url empty or choose an image-to-video model"
                )
            else:
                inputs[self.image.name] = request.image_url
        if request.audio is not None and self.audio is not None:
            put("audio", self.audio, request.audio)
        slots = self.slots()
        for name, value in request.options.items():
            slot = self.schema.fields.get(name)
            if name in slots:
                problems.append(
                    f"options.{name}: {self.who}'s input {name!r} is filled by the request's "
                    f"{slots[name]}; set {slots[name]} instead"
                )
            elif slot is None:
                known = ", ".join(self.options()) or "none"
                problems.append(
                    f"options.{name}: {self.who} has no input {name!r} (its options: {known})"
                )
            elif slot.accepts(value):
                inputs[name] = value
            else:
                problems.append(
                    f"options.{name}: {self.who} takes {slot.allowed()} in its input "
                    f"{name!r}; got {_show_json(value)}"
                )
        for name, slot in self.schema.fields.items():
            if not slot.required or slot.has_default or name in inputs:
                continue
            owner = slots.get(name)
            if owner == "image_url":
                problems.append(
                    f"image_url: {self.who} needs a first frame (its input {name!r} is "
                    "required); set image_url to an http(s) or data: URL"
                )
            elif owner is None:
                problems.append(
                    f"model: {self.who} requires its input {name!r} ({slot.allowed()}), which "
                    f"no SceneFlow request field fills; set it in options ({name}), or choose "
                    "another model"
                )
            elif not any(p.startswith(f"{owner}:") for p in problems):
                problems.append(
                    f"{owner}: {self.who} requires its input {name!r} ({slot.allowed()}); "
                    f"set {owner}"
                )
        if problems:
            raise RequestValidationError(problems, provider=self.provider)
        return inputs, self._warnings(given)

    def _fps(
        self, request: StandardVideoRequest, given: set[str], put: Callable[..., None]
    ) -> float:
        """The frame rate the video plays at; sent when asked for or when the model has no
        default of its own."""
        if self.fps is None:
            return float(request.fps)
        if "fps" in given or not self.fps.has_default:
            put("fps", self.fps, request.fps)
            return float(request.fps)
        return self._default_fps(float(request.fps))

    def _duration(
        self,
        request: StandardVideoRequest,
        fps: float,
        put: Callable[..., None],
        problems: list[str],
    ) -> None:
        seconds = request.duration
        slot = self.duration
        if slot is not None:
            if slot.enum is not None:
                value = next((v for v in slot.enum if _seconds(v) == seconds), None)
                if value is None:
                    allowed = ", ".join(
                        f"{s:g}" for v in slot.enum if (s := _seconds(v)) is not None
                    )
                    problems.append(
                        f"duration: {self.who} makes videos of {allowed} seconds (its "
                        f"input {slot.name!r}); got {seconds:g}"
                    )
                else:
                    put("duration", slot, value)
            elif slot.type == "integer" and not float(seconds).is_integer():
                problems.append(
                    f"duration: {self.who} takes whole seconds ({slot.allowed()}) in its input "
                    f"{slot.name!r}; got {seconds:g}"
                )
            elif slot.type == "string":
                put("duration", slot, f"{seconds:g}")
            else:
                value = int(seconds) if slot.type == "integer" else seconds
                put("duration", slot, value, f"{seconds:g}")
        elif self.frames is not None:
            frames = round(seconds * fps)
            if self.frames.accepts(frames):
                put("duration", self.frames, frames)
            else:
                low, high = self.frames.minimum, self.frames.maximum
                frames_allowed = self.frames.allowed().removeprefix("whole numbers from ")
                span = (
                    f"; at {fps:g} fps that is {low / fps:.1f} to {high / fps:.1f} seconds"
                    if low is not None and high is not None
                    else ""
                )
                problems.append(
                    f"duration: {self.who} renders {frames_allowed} frames (its input "
                    f"{self.frames.name!r}){span}; got {seconds:g} s = {frames} frames "
                    "(a lower fps makes a longer video)"
                )

    def _resolution(
        self, request: StandardVideoRequest, inputs: dict[str, Any], problems: list[str]
    ) -> None:
        width, height = request.frame_size()
        if self.resolution is not None:
            slot = self.resolution
            tier = request.resolution if "x" not in request.resolution else f"{min(width, height)}p"
            tier = _TIER_ALIASES.get(tier, tier)
            if slot.enum is None:
                inputs[slot.name] = tier
                return
            value = next(
                (
                    v
                    for v in slot.enum
                    if isinstance(v, str) and _TIER_ALIASES.get(v.lower(), v.lower()) == tier
                ),
                None,
            )
            if value is None:
                problems.append(
                    f"resolution: {self.who} renders {slot.allowed()} (its input "
                    f"{slot.name!r}); got {request.resolution} (a WxH whose short side is one "
                    "of these picks that tier)"
                )
            else:
                inputs[slot.name] = value
        elif self.size is not None:
            w_slot, h_slot = self.size
            if w_slot.accepts(width) and h_slot.accepts(height):
                inputs[w_slot.name], inputs[h_slot.name] = width, height
                return
            problems.append(
                f"resolution: {self.who} takes {w_slot.name} {w_slot.allowed()} and "
                f"{h_slot.name} {h_slot.allowed()}; {request.resolution} at "
                f"{request.aspect_ratio} is {width}x{height}"
            )

    def _warnings(self, given: set[str]) -> list[str]:
        mappings = self.field_mappings()
        warnings = []
        for name in REQUEST_FIELDS:
            if mappings[name].support != "unsupported" or name in ("prompt", "image_url"):
                continue
            if name == "motion_intensity" or name in given:
                what = "it is not sent (its schema has no input for it)"
                if name == "aspect_ratio" and self.size is None:
                    what = "it is not sent; the model picks the shape"
                warnings.append(unsupported_warning(self.who, name, what))
        return warnings


def _show_json(value: Any) -> str:
    text = _show(value) if not isinstance(value, dict | list) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


_OPTION_TYPES = {"boolean", "integer", "number", "string", "object", "array"}


def _option_spec(slot: SchemaField) -> OptionSpec:
    """A schema input as an option: its type, enum and range (checked by the schema itself,
    `SchemaField.accepts`, when a request sets it)."""
    kind = slot.type if slot.type in _OPTION_TYPES else "any"
    low = slot.minimum if slot.minimum is not None else slot.exclusive_minimum
    high = slot.maximum if slot.maximum is not None else slot.exclusive_maximum
    default = f"default {_show(slot.default)}" if slot.has_default else ""
    return OptionSpec(
        type=kind,  # type: ignore[arg-type]
        choices=list(slot.enum) if slot.enum is not None else None,
        minimum=low,
        maximum=high,
        wire=slot.name,
        description=default or ("required" if slot.required else "the model's own input"),
    )


def _seconds(value: Any) -> float | None:
    """The seconds an enum value stands for: 5, 5.0, "5" or "5s"."""
    if is_number(value):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip().lower().removesuffix("s"))
        except ValueError:
            return None
    return None


def pending_schema_warning(who: str, command: str, request: StandardVideoRequest) -> str:
    """validate()'s word on a model whose schema this process has not read yet."""
    given = sorted(
        f
        for f in request.model_fields_set
        if f not in ("prompt", "model", "style") and getattr(request, f) is not None
    )
    fields = f"of the fields set here ({', '.join(given)}), those" if given else "fields"
    return (
        f"model: {who} is not in SceneFlow's built-in table, so its limits are read from its "
        "published input schema when the job is submitted, and the request is checked "
        f"against that schema before anything is sent; {fields} its schema has no input for "
        f"are then not sent. `{command}` shows the mapping now"
    )


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SchemaCache(Generic[K, V]):
    """Parsed schemas for the life of the process. Concurrent first uses of one key share one
    fetch (a lock per key and event loop); a failed fetch is not remembered, so the next use
    tries again."""

    def __init__(self) -> None:
        self._values: dict[K, V] = {}
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[K, asyncio.Lock]]
        self._locks = weakref.WeakKeyDictionary()

    def get(self, key: K) -> V | None:
        return self._values.get(key)

    def put(self, key: K, value: V) -> None:
        self._values[key] = value

    def items(self) -> list[tuple[K, V]]:
        return list(self._values.items())

    async def fetch(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        if (value := self._values.get(key)) is not None:
            return value
        locks = self._locks.setdefault(asyncio.get_running_loop(), {})
        async with locks.setdefault(key, asyncio.Lock()):
            if (value := self._values.get(key)) is not None:
                return value
            value = await load()
            self._values[key] = value
            return value

    def clear(self) -> None:
        self._values.clear()
