"""The local provider's renderer: a prompt-coloured, captioned, moving picture as H.264 MP4.

Pure and deterministic: the same request gives the same frames. `render_pool` runs it as a
background job. Every frame is built with numpy array operations (no per-pixel Python), straight
in yuv420p so the encoder needs no colour conversion.
"""

from __future__ import annotations

import base64
import colorsys
import hashlib
import io
import re
import textwrap
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from sceneflow.models import StandardVideoRequest

__all__ = [
    "ENCODER",
    "Scene",
    "caption_mask",
    "decode_image",
    "palette_for",
    "render",
    "resolve_seed",
]

# quality -> (x264 preset, CRF). Measured on 2 busy cores for 5 s of 720p: ultrafast 1.0-1.5 s,
# superfast 2 s for a file no smaller, veryfast 2.6 s for half the bytes. So draft and standard
# share the fast preset and differ in CRF; high buys the smaller, cleaner file with time.
ENCODER = {"draft": ("ultrafast", 30), "standard": ("ultrafast", 23), "high": ("veryfast", 18)}


# Colour and scene words -> RGB hex colours. Plurals match too ("waves" -> "wave").
_WORDS = {
    "ocean sea underwater wave water lake river rain": "0a3d7a 1c6fb0 35a7d6 9fd8ef",
    "sky cloud": "4a90d9 a8d0f0 f4f8fc",
    "sunset sunrise dusk dawn": "ff7b29 d93a5a 6b2a7a ffc04d",
    "fire flame lava volcano": "c81d0f ff6a00 ffd23f",
    "forest jungle tree grass meadow leaf garden": "1d5e2a 3f9a3c 9ccf5b",
    "desert sand dune beach": "c2925a e8c27d 8a5a2b",
    "snow ice winter glacier arctic frost": "e8f1f8 a9cbe6 5d86b3",
    "night space galaxy star moon": "0b1030 2a1b5c 7f6bd6",
    "neon cyberpunk city": "ff2bd6 20e3ff 1a1040",
    "autumn": "b5451b e0892e 6e3b1f",
    "flower blossom spring": "f7a1c4 c77dd8 fbe2ef",
    "storm fog mist smoke noir": "4d5560 8a929c c5cbd2",
    "gold golden": "d4a017",
    "red crimson": "c8102e",
    "orange": "ff8c1a",
    "yellow": "ffd700",
    "green emerald": "2e9e44",
    "blue": "1f5fd1",
    "navy": "14285a",
    "teal turquoise cyan": "18b5b5",
    "purple violet": "7b3fb5",
    "pink magenta": "e84a9a",
    "brown": "7a4a26",
    "black": "111111",
    "white": "f4f4f4",
    "gray grey silver": "8c8c8c",
}
_COLOURS = {w: cs.split() for ws, cs in _WORDS.items() for w in ws.split()}
# Classic 5x7 font, ASCII 32..90: five column bytes per glyph, bit 0 at the top.
_FONT = bytes.fromhex(
    "0000000000 00005f0000 0007000700 147f147f14 242a7f2a12 2313086462 3649552250 0005030000"
    "001c224100 0041221c00 082a1c2a08 08083e0808 0050300000 0808080808 0060600000 2010080402"
    "3e5149453e 00427f4000 4261514946 2141454b31 1814127f10 2745454539 3c4a494930 0171090503"
    "3649494936 064949291e 0036360000 0056360000 0008142241 1414141414 4122140800 0201510906"
    "324979413e 7e1111117e 7f49494936 3e41414122 7f4141221c 7f49494941 7f09090101 3e41415132"
    "7f0808087f 00417f4100 2040413f01 7f08142241 7f40404040 7f0204027f 7f0408107f 3e4141413e"
    "7f09090906 3e4151215e 7f09192946 4649494931 01017f0101 3f4040403f 1f2040201f 7f2018207f"
    "6314081463 0304780403 6151494543"
)
_GLYPHS = (np.frombuffer(_FONT, np.uint8).reshape(-1, 1, 5) >> np.arange(7)[:, None] & 1) > 0
# RGB -> BT.601 limited-range YUV, the matrix decoders assume for untagged SD/HD streams.
_YUV = np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]])


def palette_for(request: StandardVideoRequest) -> list[tuple[int, int, int]]:
    """Colours named by the prompt and style words, minus those the negative prompt names;
    topped up from a hash of the prompt so every prompt gets its own look."""

    def words(text: str | None) -> list[str]:
        found = re.findall(r"[a-z]+", (text or "").lower())
        return [w if w in _COLOURS else w.rstrip("s") for w in found]

    banned = {c for w in words(request.negative_prompt) for c in _COLOURS.get(w, [])}
    chosen: list[str] = []
    for word in words(request.prompt) + words(request.style):
        chosen += [c for c in _COLOURS.get(word, []) if c not in banned and c not in chosen]
    rng = np.random.default_rng(
        int.from_bytes(hashlib.sha256(request.prompt.encode()).digest()[:8])
    )
    while len(chosen) < 3:
        r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.5, 0.9), rng.uniform(0.4, 0.95))
        chosen.append(bytes([round(r * 255), round(g * 255), round(b * 255)]).hex())
    return [tuple(bytes.fromhex(c)) for c in chosen[:6]]  # type: ignore[misc]


def _to_yuv(rgb: np.ndarray) -> np.ndarray:
    yuv = rgb / 255 @ _YUV.T + [16, 128, 128]
    return np.clip(np.rint(yuv), 0, 255).astype(np.uint8).T  # (3, ...): Y, U, V


def caption_mask(text: str, width: int, height: int) -> np.ndarray | None:
    """The text in white-on-nothing as a bool mask of the caption band (even height)."""
    scale = max(1, height // 160)
    per_line = (width - 4 * scale) // (6 * scale)
    if per_line < 4:  # too narrow to say anything (and shorter than the "..." placeholder)
        return None
    text = " ".join(text.upper().split())
    lines = textwrap.wrap(text, per_line, placeholder="...", max_lines=1 if height < 120 else 2)
    band = -(-(9 * len(lines) + 1) * scale // 2) * 2
    if not lines or band > height // 3:
        return None
    mask = np.zeros((band, width), bool)
    for n, line in enumerate(lines):
        codes = [ord(c) - 32 if 32 <= ord(c) <= 90 else 31 for c in line]  # 31 is "?"
        glyphs = np.pad(_GLYPHS[codes], ((0, 0), (0, 0), (0, 1)))  # one blank column after
        strip = glyphs.transpose(1, 0, 2).reshape(7, -1).repeat(scale, 0).repeat(scale, 1)
        x0, y0 = (width - strip.shape[1]) // 2, (1 + 9 * n) * scale
        mask[y0 : y0 + strip.shape[0], x0 : x0 + strip.shape[1]] = strip
    return mask


def _disc(plane: np.ndarray, cx: float, cy: float, r: float, value: int) -> None:
    h, w = plane.shape
    x0, x1, y0, y1 = (
        max(0, int(cx - r)),
        min(w, int(cx + r) + 1),
        max(0, int(cy - r)),
        min(h, int(cy + r) + 1),
    )
    if x0 < x1 and y0 < y1:
        dx, dy = (np.arange(x0, x1) - cx) ** 2, (np.arange(y0, y1) - cy) ** 2
        plane[y0:y1, x0:x1][dy[:, None] + dx[None, :] <= r * r] = value


class Scene:
    """Deterministic yuv420p frames: a wave-warped gradient, drifting discs and a caption.

    Everything is vectorised: the background is one LUT lookup of a separable index map, the
    discs touch only their bounding boxes, the caption mask is built once.
    """

    def __init__(self, request: StandardVideoRequest, seed: int, image: np.ndarray | None) -> None:
        w, h = request.frame_size()
        self.w, self.h, self.fps, self.image = w, h, request.fps, image
        rng, s = np.random.default_rng(seed), request.motion_intensity / 10
        cols = np.array(palette_for(request), float)
        stops = np.stack([cols[0], cols[1], cols[0] * 0.35])
        pos = np.linspace(0, 2, 256)
        self.lut = _to_yuv(np.stack([np.interp(pos, [0, 1, 2], stops[:, c]) for c in range(3)], 1))
        self.accents = _to_yuv(cols[2:]).T
        # Motion: amplitude and speed both grow with motion_intensity, so 1 is nearly still.
        self.xs, self.ys = np.arange(w), np.arange(h)
        self.base = np.linspace(0, 255, h)
        self.ax, self.ay = 3 + 45 * s, 2 + 30 * s
        self.kx, self.ky = 2 * np.pi * rng.uniform(1, 2.5, 2) / (w, h)
        self.wx, self.wy = 2 * np.pi * (0.03 + 0.6 * s) * rng.uniform(0.8, 1.2, 2)
        self.px, self.py = rng.uniform(0, 2 * np.pi, 2)
        n = int(rng.integers(3, 6))
        self.radius = h * rng.uniform(0.07, 0.14, n)
        self.centre = rng.uniform((0.2 * w, 0.2 * h), (0.8 * w, 0.7 * h), (n, 2))
        self.reach = (0.02 + 0.28 * s) * np.array([w, h]) * rng.uniform(0.6, 1, (n, 2))
        self.freq = 2 * np.pi * (0.02 + 0.4 * s) * rng.uniform(0.7, 1.3, (n, 2))
        self.phase = rng.uniform(0, 2 * np.pi, (n, 2))
        self.caption = caption_mask(request.prompt, w, h)
        self.buf = np.empty(w * h * 3 // 2, np.uint8)

    def frame(self, i: int) -> np.ndarray:
        """Frame i as the (h*3/2, w) array `av.VideoFrame.from_ndarray(..., "yuv420p")` takes."""
        w, h, t = self.w, self.h, i / self.fps
        ix = (self.ax * np.sin(self.kx * self.xs + self.wx * t + self.px)).astype(np.int16)
        iy = (self.base + self.ay * np.sin(self.ky * self.ys - self.wy * t + self.py)).astype(
            np.int16
        )
        idx = np.clip(np.add.outer(iy, ix), 0, 255).astype(np.uint8)
        planes = (
            self.buf[: w * h].reshape(h, w),
            self.buf[w * h : w * h * 5 // 4].reshape(h // 2, w // 2),
            self.buf[w * h * 5 // 4 :].reshape(h // 2, w // 2),
        )
        np.take(self.lut[0], idx, out=planes[0], mode="clip")
        for k in (1, 2):
            np.take(self.lut[k], idx[::2, ::2], out=planes[k], mode="clip")
        centres = self.centre + self.reach * np.sin(self.freq * t + self.phase)
        for j, ((cx, cy), r) in enumerate(zip(centres, self.radius, strict=True)):
            colour = self.accents[j % len(self.accents)]
            _disc(planes[0], cx, cy, r, colour[0])
            for k in (1, 2):
                _disc(planes[k], cx / 2, cy / 2, r / 2, colour[k])
        if self.caption is not None:
            band = self.caption.shape[0]
            for k, plane in enumerate(planes):
                rows = plane[h - band :] if k == 0 else plane[(h - band) // 2 :]
                mask = self.caption if k == 0 else self.caption[::2, ::2]
                rows >>= 1  # darken the band so the caption reads on any palette
                if k:
                    rows += 64
                rows[mask] = 235 if k == 0 else 128
        if self.image is not None and t < 1:
            self.buf[:] = self.image * (1 - t) + self.buf * t
        return self.buf.reshape(-1, w)


def resolve_seed(request: StandardVideoRequest) -> int:
    """The request's seed, else one derived from the request, so output is always repeatable."""
    if request.seed is not None:
        return request.seed
    digest = hashlib.sha256(request.model_dump_json(exclude={"seed"}).encode()).digest()
    return int.from_bytes(digest[:8], "big") % 1_000_000_000


def decode_image(data_url: str, width: int, height: int) -> np.ndarray:
    """The first image in a data: URL, scaled to the frame size, as flat yuv420p bytes."""
    _, _, payload = data_url.partition(",")
    raw = base64.b64decode(payload, validate=True)
    with av.open(io.BytesIO(raw), "r") as container:
        frame = next(container.decode(video=0))
        return frame.reformat(width=width, height=height, format="yuv420p").to_ndarray().ravel()


def render(
    request: StandardVideoRequest, path: Path, on_frame: Callable[[int, int], bool]
) -> dict[str, Any] | None:
    """Encode the video to `path`. `on_frame(done, total)` runs after every frame; when it
    returns False the render stops, the file is removed and None comes back."""
    width, height = request.frame_size()
    fps, total = request.fps, max(1, round(request.duration * request.fps))
    seed = resolve_seed(request)
    image = decode_image(request.image_url, width, height) if request.image_url else None
    scene = Scene(request, seed, image)
    preset, crf = ENCODER[request.quality]
    started = time.monotonic()
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": preset, "crf": str(crf)}
        for i in range(total):
            frame = av.VideoFrame.from_ndarray(scene.frame(i), format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(stream.encode(frame))
            if not on_frame(i + 1, total):
                break
        else:
            out.mux(stream.encode(None))
            return {
                "width": width,
                "height": height,
                "fps": fps,
                "frames": total,
                "duration": total / fps,
                "seed": seed,
                "quality": request.quality,
                "preset": preset,
                "crf": crf,
                "render_seconds": round(time.monotonic() - started, 3),
            }
    path.unlink(missing_ok=True)
    return None
