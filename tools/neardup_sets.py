"""The two near-duplicate sets the dedup benchmark scores on, with their true groups.

* tuning: distinct crops of the bundled sample photos (pipelines/sample/photos) and copies
  made with this project's own edits (dcgan_data.testing.neardup). The verification model
  (tools/fit_verify.py) and every default were chosen on it (seed 1).
* held-out: distinct crops of other photos (scikit-image's, and two face photos from the
  shared sample) and copies made with AugLy, Meta's copy-detection augmentation library.
  Nothing was tuned on it; it says whether the tuning carries over.
* dev: the tuning photos with AugLy's edits, for finding where recall is lost
  (bench/dedup_losses.py) without looking into the held-out photos.

Every image is made at 256 px, encoded as an LSUN value would be (JPEG q90), decoded and
center-cropped to 64x64 (what ingest does). Mirror copies are marked `mirror` and scored
apart. Flat colours and gradients (`flat`) are added as a separate slice, reported with and
without.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from dcgan_data.core.images import center_crop_resize, decode_image, encode_image
from dcgan_data.testing.neardup import MIRROR, TRANSFORM_NAMES, cut, distinct_crops, flat_images
from dcgan_data.testing.neardup import near_duplicate as own_edit

ROOT = Path(__file__).resolve().parents[1]
HELD_OUT_SKIMAGE = ["astronaut", "immunohistochemistry", "retina", "cat", "brick", "camera",
                    "grass", "gravel", "moon", "coins", "clock", "microaneurysms"]
HELD_OUT_FACES = ["messi5.jpg", "basketball1.jpg"]
Edit = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def tuning_photos() -> list[np.ndarray]:
    return [decode_image(p.read_bytes())[0]
            for p in sorted((ROOT / "pipelines" / "sample" / "photos").glob("*.jpg"))]


def random_crop(photo: np.ndarray, rng: np.random.Generator, size: tuple[int, int],
                min_side: int, max_side: int | None = None) -> tuple[np.ndarray, tuple[int, ...]]:
    """A random square crop of the photo (side from min_side up to its shorter side, or
    max_side), area-resized to `size` (width, height), and its box (y, x, side)."""
    import cv2

    side = int(rng.integers(min_side, min(*photo.shape[:2], max_side or photo.shape[0]) + 1))
    y, x = (int(rng.integers(0, d - side + 1)) for d in photo.shape[:2])
    crop = cv2.resize(photo[y : y + side, x : x + side], size, interpolation=cv2.INTER_AREA)
    return crop, (y, x, side)


def held_out_photos() -> list[np.ndarray]:
    import skimage.data

    photos = []
    for name in HELD_OUT_SKIMAGE:
        image = getattr(skimage.data, name)()
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        photos.append(np.ascontiguousarray(image[..., :3]))
    faces = ROOT.parent / "shared" / "sample" / "faces"
    if not faces.is_dir():
        faces = ROOT / "pipelines" / "sample" / "faces"
    photos += [decode_image((faces / name).read_bytes())[0] for name in HELD_OUT_FACES]
    return photos


def augly_edits() -> dict[str, Edit]:
    """AugLy's image edits, with parameters drawn per copy (as a copy-detection set does)."""
    import numpy

    numpy.float = float  # AugLy 1.0 still uses the alias that numpy 2 removed
    import augly.image as augly
    from PIL import Image

    def pil(edit: Callable[[Image.Image, np.random.Generator], Image.Image]) -> Edit:
        return lambda rgb, rng: np.asarray(edit(Image.fromarray(rgb), rng).convert("RGB"))

    def either(rng: np.random.Generator, low: tuple[float, float],
               high: tuple[float, float]) -> float:
        return float(rng.uniform(*low) if rng.random() < 0.5 else rng.uniform(*high))

    def colour(rng: np.random.Generator) -> tuple[int, int, int]:
        return tuple(int(c) for c in rng.integers(0, 256, 3))

    def trim(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        c = float(rng.uniform(0.05, 0.10))
        return augly.crop(image, x1=c, y1=c, x2=1 - c, y2=1 - c)

    def pad(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        f = float(rng.uniform(0.05, 0.15))
        return augly.pad(image, w_factor=f, h_factor=f, color=colour(rng))

    return {
        "saturation": pil(lambda im, r: augly.saturation(im, factor=either(r, (0.1, 0.5),
                                                                           (2, 3)))),
        "grayscale": pil(lambda im, r: augly.grayscale(im)),
        "contrast": pil(lambda im, r: augly.contrast(im, factor=either(r, (0.5, 0.8),
                                                                       (1.3, 1.8)))),
        "brightness": pil(lambda im, r: augly.brightness(im, factor=either(r, (0.6, 0.8),
                                                                           (1.25, 1.5)))),
        "rotate": pil(lambda im, r: augly.rotate(im, degrees=float(r.uniform(2, 5)
                                                                   * r.choice([-1, 1])))),
        "perspective": pil(lambda im, r: augly.perspective_transform(
            im, sigma=float(r.uniform(4, 10)), seed=int(r.integers(1 << 30)))),
        "border_crop": pil(trim),
        # the characters drawn too: AugLy's default text is drawn once per process, unseeded
        "text": pil(lambda im, r: augly.overlay_text(
            im, text=[int(c) for c in r.integers(1, 1000, 5)],
            font_size=float(r.uniform(0.08, 0.15)), x_pos=float(r.uniform(0, 0.4)),
            y_pos=float(r.uniform(0, 0.8)), color=colour(r))),
        "emoji": pil(lambda im, r: augly.overlay_emoji(
            im, emoji_size=float(r.uniform(0.1, 0.2)), x_pos=float(r.uniform(0, 0.8)),
            y_pos=float(r.uniform(0, 0.8)))),
        "jpeg_low": pil(lambda im, r: augly.encoding_quality(im, quality=int(r.integers(8, 25)))),
        "noise": pil(lambda im, r: augly.random_noise(im, var=float(r.uniform(0.002, 0.01)),
                                                      seed=int(r.integers(1 << 30)))),
        "pad": pil(pad),
        "blur": pil(lambda im, r: augly.blur(im, radius=float(r.uniform(1, 2.5)))),
        MIRROR: pil(lambda im, r: augly.hflip(im)),
    }


def own_edits() -> dict[str, Edit]:
    return {name: None for name in [*TRANSFORM_NAMES, MIRROR]}  # applied by neardup


def build(which: str, seed: int, per_photo: int, dup_fraction: float = 0.4, flats: int = 64
          ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """64x64 rows, the true group of each row, and how each row was made."""
    rng = np.random.default_rng(seed)
    if which not in ("tuning", "held-out", "dev"):
        raise ValueError(f"no near-duplicate set called {which!r}")
    photos = held_out_photos() if which == "held-out" else tuning_photos()
    edits = own_edits() if which == "tuning" else augly_edits()
    names = list(edits)
    rows, groups, kinds = [], [], []

    def add(rgb: np.ndarray, group: int, kind: str) -> None:
        rgb = decode_image(encode_image(rgb, "jpeg", 90))[0]
        rows.append(center_crop_resize(rgb, 64))
        groups.append(group)
        kinds.append(kind)

    crops = distinct_crops([p.shape[:2] for p in photos], per_photo, rng)
    for group, crop in enumerate(crops):
        photo = photos[crop.photo]
        add(cut(photo, crop, 256), group, "original")
        if rng.random() < dup_fraction:
            for name in rng.choice(names, int(rng.integers(1, 3)), replace=False):
                name = str(name)
                copy = own_edit(photo, crop, 256, name, rng) if edits[name] is None else \
                    edits[name](cut(photo, crop, 256), rng)
                add(copy, group, name)
    for i, flat in enumerate(flat_images(flats, 64, rng)):
        rows.append(flat)
        groups.append(len(crops) + i)
        kinds.append("flat")
    return np.stack(rows), np.array(groups), kinds
