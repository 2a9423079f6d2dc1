"""Test data from the bundled sample's real photos: the photos, distinct crops of them, and
shard directories written from them (for tests of stages that read shards)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dcgan_data.core.images import decode_image, resize_square
from dcgan_data.core.shards import ShardWriter

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "pipelines" / "sample"
PHOTOS = sorted((SAMPLE / "photos").glob("*.jpg"))
FACES = sorted((SAMPLE / "faces").glob("*.jpg"))


def load_photo(path: Path) -> np.ndarray:
    rgb, _ = decode_image(path.read_bytes())
    return rgb


def photo_crops(n: int, size: int = 64, crop: int = 160, seed: int = 0) -> np.ndarray:
    """n distinct square crops of the sample photos, resized to size x size (N, size, size, 3)."""
    return random_crops(n, size, lambda rng, h, w: min(crop, h, w), seed)


def random_crops(n: int, size: int, side: Callable[[np.random.Generator, int, int], int],
                 seed: int = 0) -> np.ndarray:
    """n square crops of the sample photos (crop i from photo i mod their number), resized to
    size x size: each crop's side is side(rng, photo height, photo width), its place random."""
    rng = np.random.default_rng(seed)
    photos = [load_photo(p) for p in PHOTOS]
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        img = photos[i % len(photos)]
        h, w = img.shape[:2]
        edge = side(rng, h, w)
        y = int(rng.integers(0, h - edge + 1))
        x = int(rng.integers(0, w - edge + 1))
        out[i] = resize_square(img[y : y + edge, x : x + edge], size)
    return out


def write_shards(out: Path, images: np.ndarray, keys: list[str] | None = None,
                 rows_per_shard: int = 1000, params: dict[str, Any] | None = None) -> Path:
    """Write images as a finished shard directory (for tests and benchmarks of stages that
    read shards); `params` as the stage that wrote them would record (default: a test's)."""
    keys = keys or [f"img{i:06d}" for i in range(len(images))]
    writer = ShardWriter(out, images.shape[1:], {"test": True} if params is None else params)
    starts = range(0, len(images), rows_per_shard)
    for index, start in enumerate(starts):
        stop = start + rows_per_shard
        writer.write(index, images[start:stop], keys[start:stop])
    writer.finish(len(starts))
    return out
