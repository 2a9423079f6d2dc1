"""The hash model's input: 32x32 crops of the shard rows, and the sub-pixel warp that moves
them (the training corruption and the probe hashes are both made of it)."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from dcgan_data.core.images import downsample_2x, resize_square
from dcgan_data.core.shards import ShardSet
from dcgan_data.hashmodel.autoencoder import CHUNK, DIM, SIDE


def to_hash_crops(rows: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 shard rows -> (N, 3072) uint8 32x32 crops.

    64x64 rows are 2x2-mean pooled; other square sizes are resized.
    """
    rows = np.asarray(rows)
    if rows.shape[1:3] == (2 * SIDE, 2 * SIDE):
        small = downsample_2x(rows)
    elif rows.shape[1:3] == (SIDE, SIDE):
        small = np.array(rows)  # a copy: torch warns on a read-only map of the shards
    else:
        small = np.stack([resize_square(r, SIDE) for r in rows]) if len(rows) else \
            np.zeros((0, SIDE, SIDE, 3), np.uint8)
    return np.ascontiguousarray(small, dtype=np.uint8).reshape(len(rows), DIM)


def iter_crops(shards: ShardSet, chunk: int = CHUNK) -> Iterator[np.ndarray]:
    """Every row's 32x32 crop, in row order, a chunk at a time."""
    for _, array in shards.iter_shards():
        for start in range(0, len(array), chunk):
            yield to_hash_crops(array[start : start + chunk])


def scan_units(shards: ShardSet) -> list[tuple[int, int, int]]:
    """Every row as units (shard, lo, hi) of up to CHUNK rows of one shard, in row order: what
    a pass that hashes the rows on the unit runner hands out."""
    return [(s, lo, min(lo + CHUNK, entry["rows"])) for s, entry in enumerate(shards.shards)
            for lo in range(0, entry["rows"], CHUNK)]


def sample_crops(shards: ShardSet, n: int, rng: np.random.Generator) -> np.ndarray:
    """Up to n crops drawn without replacement, read in row order (kind to the page cache)."""
    total = len(shards)
    if total <= n:
        return np.concatenate(list(iter_crops(shards)))
    indices = np.sort(rng.choice(total, n, replace=False))
    out = np.empty((n, DIM), np.uint8)
    for start in range(0, n, CHUNK):
        part = indices[start : start + CHUNK]
        out[start : start + len(part)] = to_hash_crops(shards.load(part))
    return out


def warp(images: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """(N, 3, 32, 32) images resampled on a grid scaled by `scale` (N,) about the centre
    (> 1 shows more of the scene) and moved by `shift` (N, 2) pixels (x, y); edges repeat."""
    theta = torch.zeros(len(images), 2, 3, device=images.device)
    theta[:, 0, 0] = scale
    theta[:, 1, 1] = scale
    theta[:, :, 2] = shift * (2 / SIDE)  # affine_grid units: 2 = the full side
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, padding_mode="border", align_corners=False)


_CENTRED = np.arange(SIDE, dtype=np.float32) - (SIDE - 1) / 2


def warp_crops(crops: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """`warp` for (N, 3072) uint8 crops, in uint8, by one OpenCV remap of the crops stacked
    into a single tall image (one call, not one per crop): each source coordinate is clamped
    inside its own crop, so edges repeat and neighbouring crops never bleed in."""
    n = len(crops)
    maps = []
    for axis, centred in ((0, _CENTRED[None, None, :]), (1, _CENTRED[None, :, None])):
        at = scale[:, None, None] * centred + (SIDE - 1) / 2 + shift[:, axis, None, None]
        at = np.clip(at, 0, SIDE - 1)
        if axis == 1:
            at = at + SIDE * np.arange(n)[:, None, None]  # down to this crop's place
        maps.append(np.broadcast_to(at, (n, SIDE, SIDE)).reshape(n * SIDE, SIDE)
                    .astype(np.float32))
    return cv2.remap(crops.reshape(n * SIDE, SIDE, 3), maps[0], maps[1],
                     cv2.INTER_LINEAR).reshape(n, DIM)
