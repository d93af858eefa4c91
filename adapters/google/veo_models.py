"""The Veo model family: what each model accepts, the same on the Gemini API and Vertex.

Limits from the Vertex model pages and the docstrings of the official SDK `google-genai` 2.34.0:
https://cloud.google.com/vertex-ai/generative-ai/docs/models/veo/3-1-generate and
https://cloud.google.com/vertex-ai/generative-ai/docs/models/veo/2-0-generate-001.
The Gemini API (https://ai.google.dev/gemini-api/docs/video) is taken to have the same limits.
Which model ids each endpoint serves is that endpoint's own table (`gemini.MODELS`,
`vertex.MODELS`).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["IMAGE_TYPES", "SIZES", "VEO2", "VEO3", "VEO_FPS", "ModelSpec"]

VEO_FPS = 24
# The first frame's image types Veo accepts inline.
IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")
# WxH sizes Veo renders, so "1280x720" means the same as "720p".
SIZES = {"1280x720": "720p", "720x1280": "720p", "1920x1080": "1080p", "1080x1920": "1080p"}


@dataclass(frozen=True)
class ModelSpec:
    """Per-model limits."""

    durations: tuple[int, ...]
    resolutions: tuple[str, ...] = ("720p", "1080p")
    aspect_ratios: tuple[str, ...] = ("16:9", "9:16")
    # Veo 3.x renders 1080p only as an 8-second clip.
    full_hd_duration: int | None = 8
    # Veo 2 has one resolution and no `resolution` parameter.
    sends_resolution: bool = True
    # Veo 3.x makes sound. The Gemini API always adds it; Vertex takes `generateAudio`, which
    # its reference makes required for Veo 3 models (see vertex.extra_parameters).
    audio: bool = True


VEO3 = ModelSpec(durations=(4, 6, 8))
VEO2 = ModelSpec(
    (5, 6, 7, 8), ("720p",), full_hd_duration=None, sends_resolution=False, audio=False
)
