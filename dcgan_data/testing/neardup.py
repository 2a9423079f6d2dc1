"""Near-duplicate test sets cut from real photos, with the true duplicate pairs known.

Distinct crops of each photo (overlapping each other by at most half) stand for distinct
LSUN images; transformed copies of some crops (re-encoded, resized, shifted, trimmed,
brightened, blurred) stand for the near duplicates that a web-scale set holds. Used by the
bundled sample, the dedup benchmark and the tests.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from dcgan_data.core.images import center_crop_resize, decode_image, encode_image, resize_square
from dcgan_data.testing.photos import PHOTOS, load_photo


@dataclass
class Crop:
    photo: int
    y: int
    x: int
    side: int


def _iou(a: Crop, b: Crop) -> float:
    dy = max(0, min(a.y + a.side, b.y + b.side) - max(a.y, b.y))
    dx = max(0, min(a.x + a.side, b.x + b.side) - max(a.x, b.x))
    inter = dx * dy
    return inter / (a.side**2 + b.side**2 - inter)


def distinct_crops(shapes: Sequence[tuple[int, int]], per_photo: int, rng: np.random.Generator,
                   max_iou: float = 0.5, min_side: int = 96) -> list[Crop]:
    """Up to `per_photo` square crops of each photo that overlap one another by <= max_iou."""
    crops = []
    for photo, (h, w) in enumerate(shapes):
        chosen: list[Crop] = []
        for _ in range(per_photo * 30):
            if len(chosen) == per_photo:
                break
            side = int(rng.integers(min_side, min(h, w) + 1))
            crop = Crop(photo, int(rng.integers(0, h - side + 1)),
                        int(rng.integers(0, w - side + 1)), side)
            if all(_iou(crop, other) <= max_iou for other in chosen):
                chosen.append(crop)
        crops.extend(chosen)
    return crops


def cut(photo: np.ndarray, crop: Crop, size: int, dy: int = 0, dx: int = 0) -> np.ndarray:
    """The crop (optionally shifted by dy, dx source pixels, clamped) resized to size."""
    h, w = photo.shape[:2]
    y = min(max(crop.y + dy, 0), h - crop.side)
    x = min(max(crop.x + dx, 0), w - crop.side)
    return resize_square(photo[y : y + crop.side, x : x + crop.side], size)


def stepped_crops(n: int, dy: int, dx: int, photos: int = 6) -> np.ndarray:
    """n 64 px rows: crop i of photo i mod `photos` (side 180, at dy*i, dx*i), cut to 256 and
    centre-cropped, as dedup's thumbnails are made: related-looking but distinct rows."""
    return np.stack([center_crop_resize(cut(load_photo(PHOTOS[i % photos]),
                                            Crop(0, dy * i, dx * i, 180), 256), 64)
                     for i in range(n)])


Transform = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def _reencode(fmt: str, low: int, high: int) -> Transform:
    def apply(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return decode_image(encode_image(rgb, fmt, int(rng.integers(low, high + 1))))[0]
    return apply


def _resize_down_up(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    side = rgb.shape[0]
    small = cv2.resize(rgb, (side * 5 // 8, side * 5 // 8), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (side, side), interpolation=cv2.INTER_LINEAR)


def _border_crop(low: float, high: float) -> Transform:
    def apply(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        side = rgb.shape[0]
        trim = max(1, round(side * rng.uniform(low, high)))
        return resize_square(rgb[trim : side - trim, trim : side - trim], side)
    return apply


def _scaled(rgb: np.ndarray, factor: np.ndarray | float) -> np.ndarray:
    return np.clip(rgb.astype(np.float32) * factor, 0, 255).astype(np.uint8)


def _brightness(low: float, high: float) -> Transform:
    def apply(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return _scaled(rgb, rng.uniform(low, high))
    return apply


def _strong_brightness(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _scaled(rgb, rng.uniform(0.6, 0.8) if rng.random() < 0.5 else rng.uniform(1.25, 1.5))


def _contrast(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    factor = rng.choice([rng.uniform(0.55, 0.8), rng.uniform(1.3, 1.7)])
    mean = rgb.reshape(-1, 3).mean(0)
    return np.clip((rgb - mean) * factor + mean, 0, 255).astype(np.uint8)


def _saturation(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    factor = rng.choice([rng.uniform(0.2, 0.6), rng.uniform(1.5, 2.5)])
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None].astype(np.float32)
    return np.clip(gray + (rgb - gray) * factor, 0, 255).astype(np.uint8)


def _grayscale(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.repeat(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)


def _blur(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return cv2.GaussianBlur(rgb, (0, 0), rng.uniform(0.8, 2.0))


def _noise(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noise = rng.normal(0, rng.uniform(6, 16), rgb.shape)
    return np.clip(rgb + noise, 0, 255).astype(np.uint8)


def _rotate(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rotated 2-5 degrees about the centre; the corners the rotation leaves empty are
    filled by reflection, as a re-poster cropping to the frame would show them."""
    side = rgb.shape[0]
    angle = rng.uniform(2, 5) * rng.choice([-1, 1])
    matrix = cv2.getRotationMatrix2D((side / 2, side / 2), angle, 1.0)
    return cv2.warpAffine(rgb, matrix, (side, side), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)


def perspective_warp(rgb: np.ndarray, moves: np.ndarray, border: int) -> np.ndarray:
    """The square image with its four corners moved by `moves` (4, 2), in fractions of its
    side; what the warp uncovers is filled by the OpenCV `border` mode."""
    side = rgb.shape[0]
    corners = np.float32([[0, 0], [side, 0], [side, side], [0, side]])
    matrix = cv2.getPerspectiveTransform(corners, corners + moves.astype(np.float32) * side)
    return cv2.warpPerspective(rgb, matrix, (side, side), flags=cv2.INTER_LINEAR,
                               borderMode=border)


def _perspective(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return perspective_warp(rgb, rng.uniform(-0.06, 0.06, (4, 2)), cv2.BORDER_REFLECT)


def _pad(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A coloured frame of 5-15% on each side, shrunk back to the original size."""
    side = rgb.shape[0]
    width = int(round(side * rng.uniform(0.05, 0.15)))
    colour = [int(c) for c in rng.integers(0, 256, 3)]
    framed = cv2.copyMakeBorder(rgb, width, width, width, width, cv2.BORDER_CONSTANT,
                                value=colour)
    return resize_square(framed, side)


def _text(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A caption of a few random letters somewhere on the image."""
    side = rgb.shape[0]
    out = rgb.copy()
    letters = "".join(rng.choice(list("ABCDEFGHJKLMNPRSTUVWXYZ0123456789"), 6))
    scale = side / 256 * rng.uniform(0.8, 1.4)
    colour = [int(c) for c in rng.integers(0, 256, 3)]
    origin = (int(rng.integers(0, side // 3)), int(rng.integers(side // 4, side)))
    cv2.putText(out, letters, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour,
                max(1, round(2 * scale)), cv2.LINE_AA)
    return out


def _sticker(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A round face-like sticker (an emoji stand-in) covering 1-4% of the image."""
    side = rgb.shape[0]
    out = rgb.copy()
    radius = int(side * rng.uniform(0.06, 0.11))
    cx, cy = (int(c) for c in rng.integers(radius, side - radius, 2))
    cv2.circle(out, (cx, cy), radius, (250, 200, 30), -1, cv2.LINE_AA)
    for ex in (-1, 1):
        cv2.circle(out, (cx + ex * radius // 3, cy - radius // 4), max(1, radius // 7),
                   (40, 30, 20), -1, cv2.LINE_AA)
    cv2.ellipse(out, (cx, cy + radius // 6), (radius // 2, radius // 3), 0, 0, 180,
                (40, 30, 20), max(1, radius // 10), cv2.LINE_AA)
    return out


def _mirror(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.ascontiguousarray(rgb[:, ::-1])


# name -> transform of a size x size crop; "shift" is applied in source pixels by `cut`.
# These are this project's own edits (the tuning set); bench/dedup.py also scores a second
# set made with a public augmentation library, which nothing here was tuned on.
TRANSFORMS: dict[str, Transform] = {
    "jpeg_q40": _reencode("jpeg", 40, 40),
    "jpeg_q75": _reencode("jpeg", 75, 75),
    "jpeg_low": _reencode("jpeg", 8, 20),
    "webp_q80": _reencode("webp", 80, 80),
    "resize": _resize_down_up,
    "border_crop_4pct": _border_crop(0.04, 0.04),
    "border_crop": _border_crop(0.05, 0.10),
    "brighter_10pct": _brightness(1.1, 1.1),
    "darker_10pct": _brightness(0.9, 0.9),
    "brightness": _strong_brightness,
    "contrast": _contrast,
    "saturation": _saturation,
    "grayscale": _grayscale,
    "blur": _blur,
    "noise": _noise,
    "rotate": _rotate,
    "perspective": _perspective,
    "pad": _pad,
    "text": _text,
    "sticker": _sticker,
}
TRANSFORM_NAMES = [*TRANSFORMS, "shift"]
# a mirror image is a new image for GAN training: scored apart, found only with --mirrors
MIRROR = "mirror"
# edits that are not drawn for the sets above but may be asked for by name
NAMED_ONLY: dict[str, Transform] = {
    MIRROR: _mirror,
    "slight_blur": lambda rgb, rng: cv2.GaussianBlur(rgb, (0, 0), 0.8),
}


def near_duplicate(photo: np.ndarray, crop: Crop, size: int, transform: str,
                   rng: np.random.Generator) -> np.ndarray:
    """A transformed copy of `crop` at size x size."""
    if transform == "shift":
        # 2-6 output pixels, expressed in source pixels
        step = crop.side / size
        dy, dx = (int(round(rng.integers(2, 7) * step * s)) for s in rng.choice([-1, 1], 2))
        return cut(photo, crop, size, dy, dx)
    edit = TRANSFORMS.get(transform) or NAMED_ONLY[transform]
    return edit(cut(photo, crop, size), rng)


def flat_images(count: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Hard negatives: flat colours and linear gradients (all alike to a weak hash)."""
    out = np.empty((count, size, size, 3), np.uint8)
    ramp = np.linspace(0, 1, size, dtype=np.float32)
    for i in range(count):
        a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        if i % 2 == 0:
            out[i] = a
        else:
            t = ramp[None, :, None] if i % 4 == 1 else ramp[:, None, None]
            out[i] = np.broadcast_to(a + (b - a) * t, (size, size, 3)).astype(np.uint8)
    return out


def pair_scores(labels: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Precision, recall and F1 over duplicate pairs: `labels` is the group each image was put
    in, `truth` its true group. A pair counts when both images share a group."""
    def pairs(counts: Counter) -> int:
        return sum(c * (c - 1) // 2 for c in counts.values())

    found = pairs(Counter(labels.tolist()))
    true = pairs(Counter(truth.tolist()))
    hits = pairs(Counter(zip(labels.tolist(), truth.tolist(), strict=True)))
    precision = hits / found if found else 1.0
    recall = hits / true if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1,
            "found_pairs": found, "true_pairs": true, "correct_pairs": hits}
