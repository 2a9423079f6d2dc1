"""Test data from the bundled sample's real photos: the photos, distinct crops of them, and
shard directories written from them (for tests of stages that read shards)."""

from __future__ import annotations

from pathlib import Path

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
    rng = np.random.default_rng(seed)
    photos = [load_photo(p) for p in PHOTOS]
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        img = photos[i % len(photos)]
        h, w = img.shape[:2]
        side = min(crop, h, w)
        y = int(rng.integers(0, h - side + 1))
        x = int(rng.integers(0, w - side + 1))
        out[i] = resize_square(img[y : y + side, x : x + side], size)
    return out


def write_shards(out: Path, images: np.ndarray, keys: list[str] | None = None,
                 rows_per_shard: int = 1000) -> Path:
    """Write images as a finished shard directory (for tests of stages that read shards)."""
    keys = keys or [f"img{i:06d}" for i in range(len(images))]
    writer = ShardWriter(out, images.shape[1:], {"test": True})
    starts = range(0, len(images), rows_per_shard)
    for index, start in enumerate(starts):
        stop = start + rows_per_shard
        writer.write(index, images[start:stop], keys[start:stop])
    writer.finish(len(starts))
    return out
