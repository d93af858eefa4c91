"""Runway's models: which sizes, durations and inputs each takes.

Part of the Runway adapter (``adapters.runway``): the table of models, and the capabilities each
declares, kept apart so the adapter module holds the wire protocol.
"""

from __future__ import annotations

from dataclasses import dataclass

from sceneflow.providers import FieldMapping, ModelCapabilities

# size tier -> aspect ratio -> Runway pixel ratio
Sizes = dict[str, dict[str, str]]
_GEN4_TEXT = {"16:9": "1280:720", "9:16": "720:1280"}
_GEN4_IMAGE = _GEN4_TEXT | {
    "4:3": "1104:832",
    "3:4": "832:1104",
    "1:1": "960:960",
    "21:9": "1584:672",
}
_VEO: Sizes = {
    "720p": {"16:9": "1280:720", "9:16": "720:1280"},
    "1080p": {"16:9": "1920:1080", "9:16": "1080:1920"},
}


@dataclass(frozen=True)
class Model:
    text: Sizes | None  # None: image-to-video only
    image: Sizes
    durations: tuple[int, ...]
    negative_prompt: bool


# From the SDK's *_create_params unions. gen4_turbo's duration is typed only as int; 2-10 is
# what the API reference states for it.
MODELS: dict[str, Model] = {
    "gen4.5": Model({"720p": _GEN4_TEXT}, {"720p": _GEN4_IMAGE}, tuple(range(2, 11)), False),
    "gen4_turbo": Model(None, {"720p": _GEN4_IMAGE}, tuple(range(2, 11)), False),
    "veo3.1": Model(_VEO, _VEO, (4, 6, 8), True),
    "veo3.1_fast": Model(_VEO, _VEO, (4, 6, 8), True),
}


def describe_durations(durations: tuple[int, ...]) -> str:
    if durations == tuple(range(durations[0], durations[-1] + 1)):
        return f"whole seconds from {durations[0]} to {durations[-1]}"
    return "one of " + ", ".join(str(d) for d in durations) + " seconds"


def model_capabilities(m: Model) -> ModelCapabilities:
    def table(sizes: Sizes) -> str:
        return ", ".join(
            f"{aspect}@{tier}->{ratio}"
            for tier, by_aspect in sizes.items()
            for aspect, ratio in by_aspect.items()
        )

    text = f"text: {table(m.text)}; " if m.text else ""
    aspects = {a for sizes in (m.text or {}, m.image) for tier in sizes.values() for a in tier}
    tiers = {t for sizes in (m.text or {}, m.image) for t in sizes}
    native, mapped, unsupported = "native", "mapped", "unsupported"
    fields = {
        "prompt": (native, "promptText, <= 1000 UTF-16 units"),
        "negative_prompt": (native, "negativePrompt")
        if m.negative_prompt
        else (unsupported, "only Runway's Veo models take one"),
        "aspect_ratio": (mapped, f"ratio in pixels; {text}image: {table(m.image)}"),
        "motion_intensity": (unsupported, "describe it in the prompt"),
        "duration": (native, f"duration, {describe_durations(m.durations)}"),
        "resolution": (mapped, "picks the size tier of ratio; or WxH equal to a ratio"),
        "style": (mapped, "appended to promptText"),
        "quality": (unsupported, "pick the model instead"),
        "fps": (unsupported, "the model's own frame rate"),
        "seed": (native, "seed"),
        "image_url": (native, "promptImage via /v1/image_to_video; https or data:"),
    }
    return ModelCapabilities(
        fields={k: FieldMapping(support=v[0], note=v[1]) for k, v in fields.items()},
        aspect_ratios=sorted(aspects),
        durations=[float(d) for d in m.durations],
        min_duration=m.durations[0],
        max_duration=m.durations[-1],
        resolutions=sorted(tiers),
        text_to_video=m.text is not None,
        image_to_video=True,
    )
