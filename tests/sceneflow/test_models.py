"""Every rule of StandardVideoRequest, read through format_validation_error."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from sceneflow.models import StandardVideoRequest, format_validation_error

VALID: dict[str, Any] = {
    "prompt": "a red fox in snow",
    "aspect_ratio": "16:9",
    "motion_intensity": 5,
}


def problems(**fields: Any) -> list[str]:
    with pytest.raises(ValidationError) as info:
        StandardVideoRequest(**(VALID | fields))
    return format_validation_error(info.value)


def test_minimal_request_takes_the_documented_defaults() -> None:
    req = StandardVideoRequest(**VALID)
    assert (req.duration, req.resolution, req.quality, req.fps) == (5, "720p", "standard", 24)
    assert req.negative_prompt is req.style is req.seed is req.image_url is req.model is None


def test_every_field_at_its_limits_is_accepted() -> None:
    req = StandardVideoRequest(
        prompt="p" * 4000,
        negative_prompt="n" * 4000,
        aspect_ratio="21:9",
        motion_intensity=10,
        duration=120,
        resolution="7680x16",
        style="s" * 200,
        quality="high",
        fps=60,
        seed=999_999_999,
        image_url="data:image/png;base64,AAAA",
        model="gen4_turbo",
    )
    assert req.resolution == "7680x16" and req.seed == 999_999_999
    low = StandardVideoRequest(
        **VALID | {"motion_intensity": 1, "duration": 1, "fps": 6, "seed": 0}
    )
    assert (low.motion_intensity, low.duration, low.fps, low.seed) == (1, 1, 6, 0)


def test_required_fields_are_named() -> None:
    with pytest.raises(ValidationError) as info:
        StandardVideoRequest()  # type: ignore[call-arg]
    assert format_validation_error(info.value) == [
        "prompt: Field required",
        "aspect_ratio: Field required",
        "motion_intensity: Field required",
    ]


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t"])
def test_blank_prompt_is_rejected(prompt: str) -> None:
    assert problems(prompt=prompt) == ["prompt: must not be blank"]


def test_prompt_is_stripped_and_limited_to_4000_characters() -> None:
    assert StandardVideoRequest(**VALID | {"prompt": "  fox  "}).prompt == "fox"
    assert problems(prompt="p" * 4001) == ["prompt: String should have at most 4000 characters"]


def test_negative_prompt_is_limited_to_4000_characters() -> None:
    assert problems(negative_prompt="n" * 4001) == [
        "negative_prompt: String should have at most 4000 characters"
    ]


@pytest.mark.parametrize("ratio", ["16:9", "9:16", "1:1", "4:3", "3:4", "21:9"])
def test_each_aspect_ratio_is_accepted(ratio: str) -> None:
    assert StandardVideoRequest(**VALID | {"aspect_ratio": ratio}).aspect_ratio == ratio


@pytest.mark.parametrize("ratio", ["2:1", "16x9", "", "9:21"])
def test_other_aspect_ratios_list_the_allowed_ones(ratio: str) -> None:
    assert problems(aspect_ratio=ratio) == [
        "aspect_ratio: must be one of '16:9', '9:16', '1:1', '4:3', '3:4' or '21:9'"
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "Input should be greater than or equal to 1"),
        (11, "Input should be less than or equal to 10"),
        (5.5, "Input should be a valid integer, got a number with a fractional part"),
        ("lots", "Input should be a valid integer, unable to parse string as an integer"),
    ],
)
def test_motion_intensity_is_an_integer_from_1_to_10(value: Any, message: str) -> None:
    assert problems(motion_intensity=value) == [
        f"motion_intensity: {message}; allowed: a whole number from 1 to 10"
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0.99, "Input should be greater than or equal to 1"),
        (120.01, "Input should be less than or equal to 120"),
    ],
)
def test_duration_is_1_to_120_seconds(value: float, message: str) -> None:
    assert problems(duration=value) == [f"duration: {message}; allowed: 1 to 120 seconds"]
    assert StandardVideoRequest(**VALID | {"duration": 7.5}).duration == 7.5


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("480p", "480p"),
        ("720p", "720p"),
        ("1080p", "1080p"),
        ("4K", "4k"),
        (" 1920X1080 ", "1920x1080"),
        ("16x16", "16x16"),
    ],
)
def test_resolution_accepts_names_and_wxh(given: str, stored: str) -> None:
    assert StandardVideoRequest(**VALID | {"resolution": given}).resolution == stored


@pytest.mark.parametrize("value", ["1080i", "15x1080", "1920x7681", "1920*1080", "x", "8k"])
def test_resolution_rejects_everything_else(value: str) -> None:
    assert problems(resolution=value) == [
        'resolution: must be "WxH" with each side 16 to 7680 (such as "1920x1080"), '
        "or one of 480p, 720p, 1080p, 4k"
    ]


def test_style_is_limited_to_200_characters() -> None:
    assert problems(style="s" * 201) == ["style: String should have at most 200 characters"]


@pytest.mark.parametrize("quality", ["draft", "standard", "high"])
def test_each_quality_is_accepted(quality: str) -> None:
    assert StandardVideoRequest(**VALID | {"quality": quality}).quality == quality


def test_other_qualities_list_the_allowed_ones() -> None:
    assert problems(quality="ultra") == ["quality: must be one of 'draft', 'standard' or 'high'"]


@pytest.mark.parametrize(
    ("value", "message"),
    [(5, "greater than or equal to 6"), (61, "less than or equal to 60")],
)
def test_fps_is_6_to_60(value: int, message: str) -> None:
    assert problems(fps=value) == [
        f"fps: Input should be {message}; allowed: a whole number from 6 to 60"
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [(-1, "greater than or equal to 0"), (1_000_000_000, "less than or equal to 999999999")],
)
def test_seed_is_0_to_999999999(value: int, message: str) -> None:
    assert problems(seed=value) == [
        f"seed: Input should be {message}; allowed: a whole number from 0 to 999999999"
    ]


@pytest.mark.parametrize("url", ["http://x/a.png", "https://x/a.png", "data:image/png;base64,AA"])
def test_image_url_accepts_http_and_data_urls(url: str) -> None:
    assert StandardVideoRequest(**VALID | {"image_url": url}).image_url == url


IMAGE_FORMS = (
    "an http(s) URL, a data: URL, or a Cloud Storage object gs://BUCKET/OBJECT "
    "(such as gs://my-bucket/frames/first.png)"
)


def test_image_url_rejects_other_schemes_and_blank_means_none() -> None:
    assert problems(image_url="ftp://x/a.png") == [f"image_url: must be {IMAGE_FORMS}"]
    assert problems(image_url="/tmp/a.png") == [f"image_url: must be {IMAGE_FORMS}"]
    assert StandardVideoRequest(**VALID | {"image_url": ""}).image_url is None


@pytest.mark.parametrize(
    "url",
    [
        "gs://sf-bucket/frames/fox.png",
        "gs://my.bucket.example/x.jpg",
        "gs://a_b/deep/er/path with space.webp",
        "gs://abc/x",
        "gs://" + "a" * 63 + "/x",
        "gs://" + ".".join(["a" * 63] * 3) + "/x",
    ],
)
def test_image_url_accepts_a_cloud_storage_object(url: str) -> None:
    assert StandardVideoRequest(**VALID | {"image_url": url}).image_url == url


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("gs://", "'gs://' is not a Cloud Storage object: it names no bucket"),
        ("gs:///x.png", "'gs:///x.png' is not a Cloud Storage object: it names no bucket"),
        ("gs://sf-bucket", "'gs://sf-bucket' names a bucket but no object"),
        ("gs://sf-bucket/", "'gs://sf-bucket/' names a bucket but no object"),
        (
            "gs://ab/x.png",
            "'gs://ab/x.png' is not a Cloud Storage object: the bucket name 'ab' must be 3 to 63 "
            "characters (up to 222 with dots)",
        ),
        (
            "gs://" + "a" * 64 + "/x",
            f"'gs://{'a' * 64}/x' is not a Cloud Storage object: the bucket name '{'a' * 64}' "
            "must be 3 to 63 characters (up to 222 with dots)",
        ),
        (
            "gs://My_Bucket/x.png",
            "'gs://My_Bucket/x.png' is not a Cloud Storage object: the bucket name 'My_Bucket' "
            "must be lowercase letters, digits, -, _ and ., starting and ending with a letter "
            "or digit",
        ),
        (
            "gs://-bucket/x.png",
            "'gs://-bucket/x.png' is not a Cloud Storage object: the bucket name '-bucket' must "
            "be lowercase letters, digits, -, _ and ., starting and ending with a letter or digit",
        ),
        (
            "gs://sf bucket/x.png",
            "'gs://sf bucket/x.png' is not a Cloud Storage object: the bucket name 'sf bucket' "
            "must be lowercase letters, digits, -, _ and ., starting and ending with a letter "
            "or digit",
        ),
        (
            "gs://a..b/x.png",
            "'gs://a..b/x.png' is not a Cloud Storage object: the bucket name 'a..b' must have 1 "
            "to 63 characters between its dots",
        ),
        (
            "gs://192.168.5.4/x.png",
            "'gs://192.168.5.4/x.png' is not a Cloud Storage object: the bucket name "
            "'192.168.5.4' is an IP address, which Cloud Storage refuses",
        ),
        (
            "gs://sf-bucket/..",
            "'gs://sf-bucket/..' is not a Cloud Storage object: an object name is 1 to 1,024 "
            "bytes, not . or .., without line breaks",
        ),
    ],
)
def test_a_malformed_cloud_storage_url_is_refused_naming_the_allowed_forms(
    url: str, problem: str
) -> None:
    assert problems(image_url=url) == [f"image_url: {problem}; allowed: {IMAGE_FORMS}"]


def test_a_cloud_storage_object_name_is_at_most_1024_bytes() -> None:
    assert StandardVideoRequest(**VALID | {"image_url": "gs://abc/" + "é" * 512}).image_url
    (line,) = problems(image_url="gs://abc/" + "é" * 513)
    assert line.startswith("image_url: 'gs://abc/") and "1 to 1,024 bytes" in line


def test_model_must_be_a_string() -> None:
    assert problems(model=3) == ["model: Input should be a valid string"]


def test_unknown_fields_are_rejected_and_the_known_ones_listed() -> None:
    assert problems(colour="red") == [
        "colour: is not a known field; allowed: prompt, negative_prompt, aspect_ratio, "
        "motion_intensity, duration, resolution, style, quality, fps, seed, image_url, model, "
        "audio, options"
    ]


def test_all_errors_are_reported_together_one_line_per_field() -> None:
    lines = problems(
        prompt=" ",
        negative_prompt="n" * 4001,
        aspect_ratio="2:1",
        motion_intensity=0,
        duration=121,
        resolution="1080i",
        style="s" * 201,
        quality="ultra",
        fps=5,
        seed=-1,
        image_url="ftp://x",
        model=3,
        colour="red",
    )
    fields = [line.split(":", 1)[0] for line in lines]
    assert fields == [
        "prompt",
        "negative_prompt",
        "aspect_ratio",
        "motion_intensity",
        "duration",
        "resolution",
        "style",
        "quality",
        "fps",
        "seed",
        "image_url",
        "model",
        "colour",
    ]


def test_the_request_is_frozen() -> None:
    req = StandardVideoRequest(**VALID)
    with pytest.raises(ValidationError) as info:
        req.prompt = "changed"  # type: ignore[misc]
    assert format_validation_error(info.value) == ["prompt: Instance is frozen"]
    assert req.prompt == "a red fox in snow"


@pytest.mark.parametrize(
    ("resolution", "aspect", "size"),
    [
        ("720p", "16:9", (1280, 720)),
        ("720p", "9:16", (720, 1280)),
        ("1080p", "1:1", (1080, 1080)),
        ("480p", "21:9", (1120, 480)),
        ("4k", "4:3", (2880, 2160)),
        ("1001x555", "16:9", (1000, 554)),
    ],
)
def test_frame_size_is_even_and_follows_the_aspect_ratio(
    resolution: str, aspect: str, size: tuple[int, int]
) -> None:
    req = StandardVideoRequest(**VALID | {"resolution": resolution, "aspect_ratio": aspect})
    assert req.frame_size() == size


def test_audio_and_options_leave_an_old_requests_json_and_identity_unchanged() -> None:
    plain = StandardVideoRequest(prompt="a kite", aspect_ratio="16:9", motion_intensity=3)
    assert "audio" not in plain.model_dump_json() and "options" not in plain.model_dump_json()
    loud = plain.model_copy(update={"audio": True, "options": {"loop": True}})
    again = StandardVideoRequest.model_validate_json(loud.model_dump_json())
    assert (again.audio, again.options) == (True, {"loop": True})
    assert hash(again) == hash(loud) and {plain, loud} == {plain, again}


def test_the_json_of_a_request_is_byte_for_byte_what_idempotency_keys_were_made_from() -> None:
    # Idempotency keys hash this JSON: a serializer change must not change one character.
    plain = StandardVideoRequest(prompt="a kite", aspect_ratio="16:9", motion_intensity=3)
    fields = (
        '{"prompt":"a kite","negative_prompt":null,"aspect_ratio":"16:9","motion_intensity":3,'
        '"duration":5.0,"resolution":"720p","style":null,"quality":"standard","fps":24,'
        '"seed":null,"image_url":null,"model":null'
    )
    assert plain.model_dump_json() == fields + "}"
    unset = plain.model_copy(update={"audio": None, "options": {}})
    assert unset.model_dump_json() == fields + "}"
    assert unset.model_dump(exclude_unset=True) == {
        "prompt": "a kite",
        "aspect_ratio": "16:9",
        "motion_intensity": 3,
    }
    silent = plain.model_copy(update={"audio": False, "options": {"b": [1, 2.5], "a": None}})
    assert silent.model_dump_json() == fields + ',"audio":false,"options":{"b":[1,2.5],"a":null}}'
    assert silent.model_dump(include={"audio", "options"}) == {
        "audio": False,
        "options": {"b": [1, 2.5], "a": None},
    }


def test_an_option_name_must_not_be_blank() -> None:
    assert problems(options={" ": 1}) == ["options: option names must not be blank"]
