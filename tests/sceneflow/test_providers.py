"""The adapter contract's option specs and strict checks, as plain functions."""

from __future__ import annotations

import pytest

from sceneflow.errors import RequestValidationError
from sceneflow.providers import (
    STRICT_EXEMPT,
    OptionSpec,
    check_options,
    enforce_strict,
    strict_problems,
)

SPECS = {
    "loop": OptionSpec(type="boolean", description="loop it"),
    "mode": OptionSpec(type="string", choices=["std", "pro"], description="the mode"),
    "steps": OptionSpec(type="integer", minimum=1, maximum=50, description="steps"),
    "camera": OptionSpec(
        type="object",
        description="camera",
        fields={
            "type": OptionSpec(type="string", choices=["simple"], description="type"),
            "zoom": OptionSpec(type="number", minimum=-10, maximum=10, description="zoom"),
        },
        required=["type"],
    ),
}


def test_good_options_have_no_problems() -> None:
    options = {"loop": False, "mode": "pro", "steps": 50, "camera": {"type": "simple", "zoom": 2}}
    assert check_options(options, SPECS, who="p model m") == []


def test_every_problem_is_named_at_once() -> None:
    options = {
        "loop": 1,
        "mode": "fast",
        "steps": 2.5,
        "camera": {"zoom": 20, "tilt": 1},
        "seedy": True,
    }
    assert check_options(options, SPECS, who="p model m", elsewhere={"seedy": ["m2"]}) == [
        "options.loop: p model m takes true or false; got 1",
        'options.mode: p model m takes "std" or "pro"; got "fast"',
        "options.steps: p model m takes a whole number from 1 to 50; got 2.5",
        "options.camera.zoom: p model m takes a number from -10 to 10; got 20",
        "options.camera.tilt: p model m has no such key in camera; known: type, zoom",
        'options.camera.type: p model m requires it ("simple")',
        "options.seedy: p model m has no option 'seedy' (known: camera, loop, mode, steps); "
        "'seedy' is an option of m2",
    ]


def test_a_model_without_options_says_so() -> None:
    assert check_options({"x": 1}, {}, who="p model m") == [
        "options.x: p model m has no option 'x' (it takes no options)"
    ]


def test_allowed_in_words() -> None:
    assert SPECS["camera"].allowed() == "a JSON object with type, zoom"
    assert OptionSpec(type="number", minimum=0, description="").allowed() == (
        "a number of at least 0"
    )


def test_strict_refuses_all_but_the_fields_every_request_carries() -> None:
    assert STRICT_EXEMPT == ("prompt", "aspect_ratio", "motion_intensity")
    warnings = [
        "motion_intensity: p has no equivalent setting; not sent",
        "aspect_ratio: not sent; the video takes the image's shape",
        "fps: p has no equivalent setting; not sent",
    ]
    assert enforce_strict(warnings, provider="p", strict=False) == warnings
    assert enforce_strict(warnings[:2], provider="p", strict=True) == warnings[:2]
    with pytest.raises(RequestValidationError) as info:
        enforce_strict(warnings, provider="p", strict=True)
    assert info.value.problems == strict_problems(warnings) and len(info.value.problems) == 1
    assert str(info.value).startswith(
        "Invalid request for provider 'p': fps: p has no equivalent setting; not sent [strict:"
    )
