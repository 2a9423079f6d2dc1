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

from dcgan_data.images import decode_image, encode_image, resize_square


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


def _reencode(fmt: str, quality: int) -> Callable[[np.ndarray], np.ndarray]:
    def apply(rgb: np.ndarray) -> np.ndarray:
        return decode_image(encode_image(rgb, fmt, quality))[0]
    return apply


def _resize_down_up(rgb: np.ndarray) -> np.ndarray:
    side = rgb.shape[0]
    small = cv2.resize(rgb, (side * 5 // 8, side * 5 // 8), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (side, side), interpolation=cv2.INTER_LINEAR)


def _border_crop(rgb: np.ndarray) -> np.ndarray:
    side = rgb.shape[0]
    trim = max(1, round(side * 0.04))
    return resize_square(rgb[trim : side - trim, trim : side - trim], side)


def _brightness(factor: float) -> Callable[[np.ndarray], np.ndarray]:
    def apply(rgb: np.ndarray) -> np.ndarray:
        return np.clip(rgb.astype(np.float32) * factor, 0, 255).astype(np.uint8)
    return apply


def _blur(rgb: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(rgb, (0, 0), 0.8)


# name -> transform of a size x size crop; "shift" is applied in source pixels by `cut`
TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "jpeg_q40": _reencode("jpeg", 40),
    "jpeg_q75": _reencode("jpeg", 75),
    "webp_q80": _reencode("webp", 80),
    "resize": _resize_down_up,
    "border_crop_4pct": _border_crop,
    "brighter_10pct": _brightness(1.1),
    "darker_10pct": _brightness(0.9),
    "blur": _blur,
}
TRANSFORM_NAMES = [*TRANSFORMS, "shift"]


def near_duplicate(photo: np.ndarray, crop: Crop, size: int, transform: str,
                   rng: np.random.Generator) -> np.ndarray:
    """A transformed copy of `crop` at size x size."""
    if transform == "shift":
        # 2-6 output pixels, expressed in source pixels
        step = crop.side / size
        dy, dx = (int(round(rng.integers(2, 7) * step * s)) for s in rng.choice([-1, 1], 2))
        return cut(photo, crop, size, dy, dx)
    return TRANSFORMS[transform](cut(photo, crop, size))


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
