"""adapters/schemas.py on its own: reading OpenAPI input schemas as Cog and fal write them,
checking values against them, choosing inputs by name and type, and the process cache."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from adapters.fields import REQUEST_FIELDS
from adapters.schemas import InputSchema, SchemaCache, SchemaField, SchemaModel
from sceneflow.errors import RequestValidationError
from sceneflow.models import StandardVideoRequest

# Cog's shape: enums as their own schemas behind allOf/$ref, x-order for the order.
COG = {
    "components": {
        "schemas": {
            "Input": {
                "type": "object",
                "required": ["prompt"],
                "properties": {
                    "seed": {"type": "integer", "x-order": 2},
                    "prompt": {"type": "string", "x-order": 0},
                    "aspect_ratio": {
                        "allOf": [{"$ref": "#/components/schemas/aspect_ratio"}],
                        "default": "16:9",
                        "x-order": 1,
                    },
                },
            },
            "aspect_ratio": {"enum": ["16:9", "9:16"], "type": "string", "title": "aspect_ratio"},
        }
    }
}


def parse(properties: dict[str, Any], **extra: Any) -> InputSchema:
    node = {"type": "object", "properties": properties} | extra
    return InputSchema.from_openapi(node, {})


def req(**kw: Any) -> StandardVideoRequest:
    base: dict[str, Any] = {"prompt": "fox", "aspect_ratio": "16:9", "motion_intensity": 5}
    return StandardVideoRequest(**(base | kw))


def test_cog_enums_behind_references_and_the_x_order() -> None:
    schema = InputSchema.from_openapi(COG["components"]["schemas"]["Input"], COG)
    assert list(schema.fields) == ["prompt", "aspect_ratio", "seed"]
    ratio = schema.fields["aspect_ratio"]
    assert (ratio.type, ratio.enum, ratio.default) == ("string", ("16:9", "9:16"), "16:9")
    assert schema.fields["prompt"].required and not schema.fields["seed"].required


def test_pydantic_optionals_openapi_3_1_types_and_exclusive_bounds() -> None:
    schema = parse(
        {
            "seed": {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}]},
            "fps": {"type": ["integer", "null"], "maximum": 60},
            "cfg": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            "old": {"type": "number", "minimum": 0, "exclusiveMinimum": True},
            "mixed": {"anyOf": [{"enum": ["5"]}, {"enum": ["10"]}]},
            "any": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        },
        **{"x-fal-order-properties": ["fps", "seed"]},
    )
    assert list(schema.fields)[:2] == ["fps", "seed"]  # fal's order, then the rest
    f = schema.fields
    assert (f["seed"].type, f["seed"].minimum) == ("integer", 0)
    assert (f["fps"].type, f["fps"].maximum) == ("integer", 60)
    assert f["cfg"].accepts(0.5) and not f["cfg"].accepts(0) and not f["cfg"].accepts(1)
    assert f["cfg"].allowed() == "numbers from 0 to 1 (ends excluded)"
    assert not f["old"].accepts(0) and f["old"].accepts(0.1)
    assert f["mixed"].enum == ("5", "10")
    assert f["any"].type is None and f["any"].accepts("x") and f["any"].accepts(3)


def test_a_reference_loop_or_a_reference_elsewhere_is_an_error() -> None:
    loop = {"components": {"schemas": {"A": {"$ref": "#/components/schemas/A"}}}}
    with pytest.raises(ValueError, match="circle"):
        InputSchema.from_openapi({"$ref": "#/components/schemas/A"}, loop)
    with pytest.raises(ValueError, match="outside the document"):
        InputSchema.from_openapi({"$ref": "https://example.com/schema.json"}, {})
    with pytest.raises(ValueError, match="no properties"):
        InputSchema.from_openapi({"type": "object"}, {})


@pytest.mark.parametrize(
    ("spec", "good", "bad", "allowed"),
    [
        (
            {"type": "integer", "minimum": 2, "maximum": 12},
            [2, 12, 5.0],
            [1, 13, 2.5, True, "5"],
            "whole numbers from 2 to 12",
        ),
        ({"type": "number", "minimum": 0.5}, [0.5, 3], [0, "1"], "numbers from 0.5"),
        (
            {"type": "integer", "multipleOf": 8, "maximum": 64},
            [8, 64],
            [12, 72],
            "whole numbers up to 64, multiples of 8",
        ),
        ({"enum": [5, 10], "type": "integer"}, [5, 10.0], [7, "5"], "5, 10"),
        ({"enum": ["5s", "10s"], "type": "string"}, ["5s"], [5, "5"], '"5s", "10s"'),
        ({"type": "boolean"}, [True, False], [1, "true"], "true or false"),
    ],
)
def test_values_are_checked_against_type_enum_and_range(
    spec: dict[str, Any], good: list[Any], bad: list[Any], allowed: str
) -> None:
    field = parse({"x": spec}).fields["x"]
    assert [field.accepts(v) for v in good] == [True] * len(good)
    assert [field.accepts(v) for v in bad] == [False] * len(bad)
    assert field.allowed() == allowed


def model(properties: dict[str, Any], required: list[str] | None = None) -> SchemaModel:
    schema = parse(properties, required=required or ["prompt"])
    return SchemaModel("test model m", schema, provider="test", source="a test")


def test_inputs_are_chosen_by_name_and_type_and_a_wrong_type_is_noted() -> None:
    m = model(
        {
            "prompt": {"type": "string"},
            "duration": {"type": "array"},  # a list is no duration
            "video_length": {"type": "integer"},
            "seed": {"type": "integer"},
            "sound": {"type": "boolean", "default": False},
            "image": {"type": "string", "format": "uri"},
        }
    )
    assert m.duration is not None and m.duration.name == "video_length"
    assert m.image is not None and m.image.name == "image"
    assert m.notes == [
        "input 'duration' is array, not integer or number; SceneFlow does not fill it",
        "audio: the model has a switch, input 'sound' (default false); the request's audio "
        "sets it, and unset leaves the model's default",
    ]
    assert set(m.field_mappings()) == set(REQUEST_FIELDS)
    inputs, _ = m.build(req(duration=6, seed=1))
    assert inputs == {"prompt": "fox", "video_length": 6, "seed": 1}
    inputs, _ = m.build(req(duration=6, audio=True))
    assert inputs == {"prompt": "fox", "video_length": 6, "sound": True}


def test_a_model_without_a_prompt_or_with_an_input_nothing_fills_is_refused() -> None:
    m = model({"image": {"type": "string"}, "mask": {"type": "string"}}, required=["image", "mask"])
    with pytest.raises(RequestValidationError) as info:
        m.build(req(duration=4))
    assert info.value.problems == [
        "prompt: test model m has no text prompt input (its inputs: image, mask); SceneFlow can "
        "only drive models that take a prompt",
        "image_url: test model m needs a first frame (its input 'image' is required); set "
        "image_url to an http(s) or data: URL",
        "model: test model m requires its input 'mask' (text), which no SceneFlow request "
        "field fills; set it in options (mask), or choose another model",
    ]


def test_a_duration_enum_of_text_and_a_free_text_duration() -> None:
    words = model({"prompt": {"type": "string"}, "duration": {"enum": ["4s", "8s"]}})
    assert words.build(req(duration=8))[0]["duration"] == "8s"
    assert words.capabilities().durations == [4.0, 8.0]
    free = model({"prompt": {"type": "string"}, "duration": {"type": "string"}})
    assert free.build(req(duration=6))[0]["duration"] == "6"
    assert free.notes[0].startswith("input 'duration' is free text")


def test_fields_the_schema_lacks_are_warned_when_set() -> None:
    m = model({"prompt": {"type": "string"}})
    inputs, warnings = m.build(req(seed=4, quality="high", negative_prompt="rain"))
    assert inputs == {"prompt": "fox"}
    assert [w.split(":")[0] for w in warnings] == [
        "negative_prompt",
        "aspect_ratio",
        "motion_intensity",
        "quality",
        "seed",
    ]


async def test_the_cache_fetches_once_for_concurrent_uses_and_forgets_failures() -> None:
    cache: SchemaCache[str, SchemaField] = SchemaCache()
    calls: list[str] = []

    async def load() -> SchemaField:
        calls.append("load")
        await asyncio.sleep(0.01)
        if len(calls) == 1:
            raise ValueError("the first read fails")
        return SchemaField(name="x")

    with pytest.raises(ValueError):
        await cache.fetch("k", load)
    assert cache.get("k") is None  # a failure is not remembered
    found = await asyncio.gather(*(cache.fetch("k", load) for _ in range(5)))
    assert calls == ["load", "load"] and all(f is found[0] for f in found)
    assert cache.items() == [("k", found[0])]
