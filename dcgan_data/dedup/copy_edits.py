"""Synthetic copies and synthetic look-alikes of a dataset's own rows, for dedup's run-time fit.

Dedup learns what a copy looks like on the dataset it de-duplicates (`selffit`): each sampled
row is edited the way re-posted images are (the edit families below), and cut into pairs of
overlapping or adjacent crops, which look alike but are distinct images. Everything works on
the rows as stored (square uint8 RGB, 64 px by default) with OpenCV and numpy only.

These edits are this project's own; the held-out benchmark sets are made with other libraries
(AugLy, albumentations), so that a fit to these edits is not scored on themselves.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from dcgan_data.core.images import resize_square
from dcgan_data.testing.neardup import TRANSFORMS, perspective_warp

Edit = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def _gamma(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    gamma = rng.choice([rng.uniform(0.5, 0.8), rng.uniform(1.25, 2.0)])
    table = (255 * (np.arange(256) / 255) ** gamma).round().astype(np.uint8)
    return table[rgb]


def _clahe(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
    tiles = int(rng.integers(2, 9))
    clahe = cv2.createCLAHE(clipLimit=float(rng.uniform(1.5, 4.0)), tileGridSize=(tiles, tiles))
    lab[..., 0] = clahe.apply(lab[..., 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def _equalize(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    ycc = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)
    ycc[..., 0] = cv2.equalizeHist(ycc[..., 0])
    return cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB)


def _hue(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    shift = int(rng.integers(8, 40)) * int(rng.choice([-1, 1]))
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + shift) % 180
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def _sepia(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    matrix = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]],
                      np.float32)
    return np.clip(rgb.astype(np.float32) @ matrix.T, 0, 255).astype(np.uint8)


def _posterize(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    bits = int(rng.integers(2, 5))
    return (rgb >> (8 - bits) << (8 - bits)).astype(np.uint8)


def _downscale(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    side = rgb.shape[0]
    small = max(8, int(side * rng.uniform(0.3, 0.6)))
    down = cv2.resize(rgb, (small, small), interpolation=cv2.INTER_AREA)
    return cv2.resize(down, (side, side), interpolation=int(rng.choice(
        [cv2.INTER_NEAREST, cv2.INTER_LINEAR, cv2.INTER_CUBIC])))


def _motion_blur(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    length = int(rng.integers(3, 8))
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2] = 1
    rotation = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2),
                                       float(rng.uniform(0, 180)), 1.0)
    kernel = cv2.warpAffine(kernel, rotation, (length, length))
    return cv2.filter2D(rgb, -1, kernel / max(kernel.sum(), 1e-6))


def _sharpen(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    blurred = cv2.GaussianBlur(rgb, (0, 0), 1.5).astype(np.float32)
    amount = rng.uniform(0.5, 1.5)
    return np.clip(rgb + amount * (rgb - blurred), 0, 255).astype(np.uint8)


def _salt_pepper(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = rgb.copy()
    hit = rng.random(rgb.shape[:2]) < rng.uniform(0.01, 0.04)
    out[hit] = rng.choice([0, 255], (int(hit.sum()), 1))
    return out


def _zoom(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A crop keeping 75-95% of each side, anywhere, resized back."""
    side = rgb.shape[0]
    keep = int(side * rng.uniform(0.75, 0.95))
    y, x = (int(rng.integers(0, side - keep + 1)) for _ in range(2))
    return resize_square(rgb[y : y + keep, x : x + keep], side)


def _stretch(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Stretched 1.1-1.3x along one axis, then center-cropped back to a square."""
    side = rgb.shape[0]
    long = int(side * rng.uniform(1.1, 1.3))
    size = (long, side) if rng.random() < 0.5 else (side, long)
    wide = cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR)
    y, x = (wide.shape[0] - side) // 2, (wide.shape[1] - side) // 2
    return np.ascontiguousarray(wide[y : y + side, x : x + side])


def _affine(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    side = rgb.shape[0]
    matrix = cv2.getRotationMatrix2D((side / 2, side / 2),
                                     float(rng.uniform(2, 8) * rng.choice([-1, 1])),
                                     float(rng.uniform(0.85, 1.15)))
    matrix[:, 2] += rng.uniform(-0.05, 0.05, 2) * side
    border = cv2.BORDER_REFLECT if rng.random() < 0.5 else cv2.BORDER_CONSTANT
    return cv2.warpAffine(rgb, matrix, (side, side), flags=cv2.INTER_LINEAR, borderMode=border)


def _perspective(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    moves = rng.uniform(-0.1, 0.1, (4, 2))
    return perspective_warp(rgb, moves, cv2.BORDER_REFLECT if rng.random() < 0.5
                            else cv2.BORDER_CONSTANT)


def _lens(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Barrel or pincushion distortion about the centre."""
    side = rgb.shape[0]
    k = rng.uniform(0.1, 0.3) * rng.choice([-1, 1])
    grid = (np.arange(side, dtype=np.float32) - (side - 1) / 2) / (side / 2)
    x, y = np.meshgrid(grid, grid)
    factor = 1 + k * (x * x + y * y)
    map_x = (x * factor * side / 2 + (side - 1) / 2).astype(np.float32)
    map_y = (y * factor * side / 2 + (side - 1) / 2).astype(np.float32)
    return cv2.remap(rgb, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _border(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A frame of 3-12% on some sides (letterbox or all round), shrunk back to size."""
    side = rgb.shape[0]
    widths = [int(side * rng.uniform(0.03, 0.12)) if rng.random() < 0.7 else 0
              for _ in range(4)]
    colour = [int(c) for c in (rng.integers(0, 256, 3) if rng.random() < 0.5 else
                               [0, 0, 0] if rng.random() < 0.5 else [255, 255, 255])]
    framed = cv2.copyMakeBorder(rgb, *widths, cv2.BORDER_CONSTANT, value=colour)
    return cv2.resize(framed, (side, side), interpolation=cv2.INTER_AREA)


def _logo(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A small opaque or translucent mark (box, disc, letters) near a corner."""
    side = rgb.shape[0]
    out = rgb.copy()
    mark = np.zeros_like(rgb)
    size = int(side * rng.uniform(0.1, 0.2))
    y = int(rng.choice([rng.integers(0, side // 6), rng.integers(side * 5 // 6 - size,
                                                                  side - size + 1)]))
    x = int(rng.choice([rng.integers(0, side // 6), rng.integers(side * 5 // 6 - size,
                                                                  side - size + 1)]))
    colour = [int(c) for c in rng.integers(0, 256, 3)]
    if rng.random() < 0.5:
        cv2.rectangle(mark, (x, y), (x + size, y + size // 2), colour, -1)
    else:
        cv2.circle(mark, (x + size // 2, y + size // 2), size // 2, colour, -1, cv2.LINE_AA)
    covered = mark.any(axis=2)
    alpha = rng.uniform(0.5, 1.0)
    out[covered] = (alpha * mark[covered] + (1 - alpha) * rgb[covered]).astype(np.uint8)
    return out


def _shadow(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A dark polygon cast across part of the image."""
    side = rgb.shape[0]
    points = rng.integers(0, side, (int(rng.integers(3, 6)), 2)).astype(np.int32)
    mask = np.zeros(rgb.shape[:2], np.uint8)
    cv2.fillPoly(mask, [points], 1)
    mask = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 1.0)[..., None]
    return np.clip(rgb * (1 - mask * rng.uniform(0.3, 0.6)), 0, 255).astype(np.uint8)


def _flare(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A bright soft disc (sun flare) somewhere in the upper half."""
    side = rgb.shape[0]
    cy, cx = rng.uniform(0, side / 2), rng.uniform(0, side)
    y, x = np.mgrid[0:side, 0:side]
    radius = side * rng.uniform(0.1, 0.25)
    glow = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * radius * radius))[..., None]
    colour = np.array([255, 250, 220], np.float32)
    strength = rng.uniform(0.5, 0.9)
    return np.clip(rgb * (1 - strength * glow) + colour * strength * glow, 0,
                   255).astype(np.uint8)


def _holes(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A few filled rectangles (dropout), 2-6% of the image in all."""
    side = rgb.shape[0]
    out = rgb.copy()
    for _ in range(int(rng.integers(1, 5))):
        h, w = (int(side * rng.uniform(0.05, 0.12)) for _ in range(2))
        y, x = int(rng.integers(0, side - h)), int(rng.integers(0, side - w))
        out[y : y + h, x : x + w] = int(rng.choice([0, 128, 255]))
    return out


def _meme(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The image under a white caption box with dark text (the meme format), resized back."""
    side = rgb.shape[0]
    bar = int(side * rng.uniform(0.15, 0.3))
    canvas = np.full((side + bar, side, 3), 255, np.uint8)
    canvas[bar:] = rgb
    letters = "".join(rng.choice(list("ABCDEFGHKLMNPRSTUWXYZ"), int(rng.integers(4, 9))))
    cv2.putText(canvas, letters, (2, int(bar * 0.7)), cv2.FONT_HERSHEY_SIMPLEX,
                bar / 40, (0, 0, 0), 1, cv2.LINE_AA)
    return cv2.resize(canvas, (side, side), interpolation=cv2.INTER_AREA)


# family -> edits; each sampled row gets one edit (sometimes two) from a family drawn evenly
FAMILIES: dict[str, list[Edit]] = {
    "tone": [_gamma, _clahe, _equalize, _hue, _sepia, _posterize, TRANSFORMS["brightness"],
             TRANSFORMS["contrast"], TRANSFORMS["saturation"], TRANSFORMS["grayscale"]],
    "compression": [TRANSFORMS["jpeg_low"], TRANSFORMS["jpeg_q40"], TRANSFORMS["webp_q80"],
                    _downscale],
    "blur_noise": [TRANSFORMS["blur"], _motion_blur, TRANSFORMS["noise"], _salt_pepper,
                   _sharpen],
    "geometry": [_zoom, _stretch, _affine, _perspective, _lens, _border, TRANSFORMS["rotate"]],
    "overlay": [_logo, _shadow, _flare, _holes, _meme, TRANSFORMS["text"],
                TRANSFORMS["sticker"]],
}
TWO_EDITS = 0.25  # share of copies made by two edits from different families


def edited_copy(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A copy of one square uint8 RGB row, as a re-poster might have made it."""
    names = list(FAMILIES)
    count = 2 if rng.random() < TWO_EDITS else 1
    for family in rng.choice(names, count, replace=False):
        edits = FAMILIES[str(family)]
        rgb = edits[int(rng.integers(len(edits)))](rgb, rng)
    return np.ascontiguousarray(rgb)


def look_alike_pair(rgb: np.ndarray, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Two distinct images cut from one row: crops sharing 30-60% of their area, or crops side
    by side (the next frame along). Both are resized to the row's size, so that the pair is
    as alike as two views of one scene can be without being one image."""
    side = rgb.shape[0]
    if rng.random() < 0.7:  # overlapping: offsets along both axes leaving ~30-60% shared
        crop = int(side * rng.uniform(0.55, 0.75))
        along = crop * (1 - np.sqrt(rng.uniform(0.3, 0.6)))
        dy, dx = (min(int(round(along * rng.uniform(0.6, 1.0))), side - crop) for _ in range(2))
    else:  # adjacent along one axis
        crop = side // 2
        dy, dx = (crop, 0) if rng.random() < 0.5 else (0, crop)
    y, x = int(rng.integers(0, side - crop - dy + 1)), int(rng.integers(0, side - crop - dx + 1))
    first = rgb[y : y + crop, x : x + crop]
    second = rgb[y + dy : y + dy + crop, x + dx : x + dx + crop]
    return resize_square(first, side), resize_square(second, side)
