"""Replicate's well-known video models: where each StandardVideoRequest field goes.

Every Replicate model has its own input names; this table is the part of the Replicate adapter
(``adapters.replicate``) that says, model by model, which input takes which field.
"""

from __future__ import annotations

from pydantic import BaseModel

from sceneflow.models import StandardVideoRequest
from sceneflow.providers import FieldMapping, ModelCapabilities

_NATIVE, _MAPPED, _UNSUPPORTED = "native", "mapped", "unsupported"


class Spec(BaseModel):
    """Where one model takes each request field; None means the model has no such input."""

    image: str
    negative_prompt: str | None = None
    seed: str | None = None
    aspect_ratio: str | None = None
    aspect_ratios: list[str]
    durations: list[int]
    # Our resolution tier (the frame's short side) -> the model's `resolution` value.
    resolutions: dict[int, str] | None = None
    # The model ignores aspect_ratio when given a first frame: the image sets the shape.
    image_sets_aspect: bool = False
    # Durations allowed only at one resolution tier (Hailuo: 10 s only at 768p).
    duration_needs: dict[int, int] = {}
    notes: dict[str, str] = {}


# Input names from each model's API page on replicate.com (schema of the latest version).
MODELS: dict[str, Spec] = {
    "kwaivgi/kling-v2.5-turbo-pro": Spec(
        image="start_image",
        negative_prompt="negative_prompt",
        aspect_ratio="aspect_ratio",
        aspect_ratios=["16:9", "9:16", "1:1"],
        durations=[5, 10],
        image_sets_aspect=True,
        notes={"resolution": "the model picks its own output size"},
    ),
    "google/veo-3.1": Spec(
        image="image",
        negative_prompt="negative_prompt",
        seed="seed",
        aspect_ratio="aspect_ratio",
        aspect_ratios=["16:9", "9:16"],
        durations=[4, 6, 8],
        resolutions={720: "720p", 1080: "1080p"},
    ),
    "minimax/hailuo-02": Spec(
        image="first_frame_image",
        # No aspect input: text-to-video renders 16:9, image-to-video follows the image.
        aspect_ratios=["16:9"],
        durations=[6, 10],
        image_sets_aspect=True,
        resolutions={480: "512p", 512: "512p", 720: "768p", 768: "768p", 1080: "1080p"},
        duration_needs={10: 720},
        notes={"resolution": "480p is sent as 512p, 720p as 768p"},
    ),
}
REQUEST_FIELDS = [f for f in StandardVideoRequest.model_fields if f != "model"]
TIERS = (480, 720, 1080, 2160)  # short sides of the named resolutions 480p..4k


def model_capabilities(spec: Spec) -> ModelCapabilities:
    fields = {
        name: FieldMapping(support=_UNSUPPORTED, note="not sent; validate() warns")
        for name in REQUEST_FIELDS
    }
    fields["prompt"] = FieldMapping(support=_NATIVE, note="prompt")
    fields["style"] = FieldMapping(support=_MAPPED, note="appended to the prompt")
    fields["image_url"] = FieldMapping(support=_NATIVE, note=spec.image)
    fields["duration"] = FieldMapping(support=_NATIVE, note="duration (whole seconds)")
    for name in ("negative_prompt", "seed", "aspect_ratio"):
        if input_name := getattr(spec, name):
            fields[name] = FieldMapping(support=_NATIVE, note=input_name)
    if spec.aspect_ratio is None:
        fields["aspect_ratio"] = FieldMapping(
            support=_MAPPED, note="not sent: 16:9 from text; an image_url sets the shape"
        )
    if spec.resolutions:
        same = all(f"{k}p" == v for k, v in spec.resolutions.items())
        fields["resolution"] = FieldMapping(
            support=_NATIVE if same else _MAPPED,
            note=spec.notes.get("resolution", "resolution, by the frame's short side"),
        )
    elif note := spec.notes.get("resolution"):
        fields["resolution"] = FieldMapping(support=_UNSUPPORTED, note=note)
    return ModelCapabilities(
        fields=fields,
        aspect_ratios=spec.aspect_ratios,
        durations=[float(d) for d in spec.durations],
        min_duration=min(spec.durations),
        max_duration=max(spec.durations),
        resolutions=[f"{k}p" for k in TIERS if k in spec.resolutions] if spec.resolutions else None,
        text_to_video=True,
        image_to_video=True,
    )
