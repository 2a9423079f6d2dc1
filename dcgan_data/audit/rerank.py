"""Exact distances in pixel space: each query's candidates re-ranked by the RMS difference
at their best alignment, and the relative distance the copy rule compares."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from dcgan_data.core.files import progress
from dcgan_data.core.shards import ShardSet
from dcgan_data.hashmodel import hashing

SMOOTH = 1.0  # Gaussian blur (sigma, 32x32 pixels) before pixel distances
SHIFT = 2  # the pixel distance tries every shift up to this many 32x32 pixels...
FINE = 2  # ...in half-pixel steps for each query's nearest 2 candidates
PAIR_BATCH = 2048  # image pairs compared per step
QUERY_BLOCK = 1024  # queries re-ranked together
CONTEXT = 5  # the relative distance divides by the mean distance to the next 5 neighbours
# A training row used for calibration stands for a real image the index does not hold, so
# its copies inside the training set are left out with it: otherwise a set holding some
# images twice calibrates on distances near 0 and no sample could ever be called a copy.
# Only (near-)exact repeats are: edited copies (JPEG, brightness, blur, a shift) lie further
# off, and a training set with many of those should be de-duplicated first.
DUPLICATE = 1.0  # RMS grey levels (pixel distance) within which two rows are one image


def pixel_view(crops: np.ndarray, config: hashing.HashConfig) -> torch.Tensor:
    """(N, 3072) uint8 crops -> (N, 3, 32, 32) brightness-levelled pixels (as the hash sees
    them, so a copy 10% brighter is the same image), slightly blurred so that a copy shifted
    by a fraction of a pixel, re-encoded or blurred stays close to its original."""
    pixels = hashing.level(torch.from_numpy(crops).float(), config)
    images = pixels.view(-1, hashing.SIDE, hashing.SIDE, 3).permute(0, 3, 1, 2)
    if not SMOOTH:
        return images
    taps = torch.arange(-2, 3, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (taps / SMOOTH) ** 2)
    kernel = (kernel / kernel.sum()).view(1, 1, 1, 5).repeat(3, 1, 1, 1)
    images = F.conv2d(F.pad(images, (2, 2, 0, 0), mode="replicate"), kernel, groups=3)
    return F.conv2d(F.pad(images, (0, 0, 2, 2), mode="replicate"), kernel.transpose(2, 3),
                    groups=3)


def shift_distance(a: torch.Tensor, b: torch.Tensor, shift: int = SHIFT, fine: bool = True
                   ) -> torch.Tensor:
    """RMS difference (grey levels) of image pairs (N, 3, S, S), at the best alignment of b
    within `shift` pixels each way, in half-pixel steps (`fine`) or whole pixels, over the
    centre all alignments share. A copy moved by a few pixels or trimmed a little stays
    close; two different scenes do not."""
    a = a - 128.0  # smaller magnitudes: less cancellation in float32
    b = b - 128.0
    phases = [b, _half_step(b, 3), _half_step(b, 2), _half_step(_half_step(b, 3), 2)] \
        if fine else [b]
    return torch.stack([_aligned_error(a, p, shift) for p in phases], 1).min(1).values.sqrt()


def _half_step(images: torch.Tensor, dim: int) -> torch.Tensor:
    """Images resampled half a pixel along `dim` (linear interpolation; the edge repeats)."""
    nxt = torch.cat([images.narrow(dim, 1, images.shape[dim] - 1),
                     images.narrow(dim, images.shape[dim] - 1, 1)], dim)
    return (images + nxt) / 2


def _aligned_error(a: torch.Tensor, b: torch.Tensor, shift: int) -> torch.Tensor:
    """Mean squared difference of a's centre and b at its best integer alignment. Every
    alignment at once: |a - b|^2 = |a|^2 + |b|^2 - 2 a.b, the cross terms as one grouped
    convolution (each pair is its own group)."""
    n, c, side, _ = a.shape
    width = side - 2 * shift
    inner = a[:, :, shift : side - shift, shift : side - shift]
    cross = F.conv2d(b.reshape(1, n * c, side, side), inner.reshape(n * c, 1, width, width),
                     groups=n * c).view(n, c, 2 * shift + 1, 2 * shift + 1).sum(1)
    b_squares = F.avg_pool2d((b * b).sum(1, keepdim=True), width, stride=1)[:, 0] * width**2
    a_squares = (inner * inner).sum(dim=(1, 2, 3))
    error = (a_squares[:, None, None] + b_squares - 2 * cross).clamp(min=0) / (c * width**2)
    return error.flatten(1).min(dim=1).values


def rerank(shards: ShardSet, query_crops: np.ndarray, table: np.ndarray,
           config: hashing.HashConfig) -> tuple[np.ndarray, np.ndarray]:
    """Each query's candidates by `shift_distance`, nearest first: (rows, distances), both
    (N, M), padded with (-1, inf)."""
    rows_out = np.full(table.shape, -1, np.int64)
    dist_out = np.full(table.shape, np.inf, np.float32)
    for start in progress(range(0, len(table), QUERY_BLOCK), desc="re-rank", unit="block"):
        block = table[start : start + QUERY_BLOCK]
        rows = np.unique(block[block >= 0])
        if not len(rows):
            continue
        candidates = pixel_view(hashing.to_hash_crops(shards.load(rows)), config)
        queries = pixel_view(query_crops[start : start + QUERY_BLOCK], config)
        found = np.full(block.shape, np.inf, np.float32)
        # whole-pixel alignments for every candidate, then half-pixel ones for the nearest
        _measure(queries, candidates, rows, block, found, block >= 0, fine=False)
        order = np.argsort(found, axis=1, kind="stable")
        block, found = np.take_along_axis(block, order, 1), np.take_along_axis(found, order, 1)
        nearest = np.zeros(block.shape, bool)
        nearest[:, :FINE] = block[:, :FINE] >= 0
        _measure(queries, candidates, rows, block, found, nearest, fine=True)
        order = np.argsort(found, axis=1, kind="stable")
        found = np.take_along_axis(found, order, 1)
        dist_out[start : start + len(block)] = found
        rows_out[start : start + len(block)] = np.where(
            np.isfinite(found), np.take_along_axis(block, order, 1), -1)
    return rows_out, dist_out


def _measure(queries: torch.Tensor, candidates: torch.Tensor, rows: np.ndarray,
             block: np.ndarray, found: np.ndarray, which: np.ndarray, fine: bool) -> None:
    """found[q, m] = the distance of query q to candidate block[q, m], where `which`."""
    query, slot = np.nonzero(which)
    for part in range(0, len(query), PAIR_BATCH):
        q, m = query[part : part + PAIR_BATCH], slot[part : part + PAIR_BATCH]
        where = np.searchsorted(rows, block[q, m])
        found[q, m] = shift_distance(queries[q], candidates[where], fine=fine).numpy()


def without_repeats(rows: np.ndarray, distances: np.ndarray, which: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ranked candidates (rows, distances) with, for the queries `which` (training rows
    used for calibration), the rows within DUPLICATE of them left out, nearest first; and
    whether each query had any."""
    repeat = which[:, None] & (distances <= DUPLICATE)
    rows, distances = np.where(repeat, -1, rows), np.where(repeat, np.inf, distances)
    order = np.argsort(distances, axis=1, kind="stable")
    return (np.take_along_axis(rows, order, 1), np.take_along_axis(distances, order, 1),
            repeat.any(axis=1))


def relative_distances(distances: np.ndarray, context: int = CONTEXT) -> np.ndarray:
    """Distance to the nearest training image over the mean distance to the next `context`
    ones, from (N, M) sorted candidate distances. A copy is much nearer its original than
    anything else (small ratio); an image that is merely plain, and so near many training
    images at once, is not (ratio near 1). NaN with fewer than two candidates."""
    following = distances[:, 1 : 1 + context]
    counted = np.isfinite(following).sum(axis=1)
    total = np.where(np.isfinite(following), following, 0).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = distances[:, 0] / (total / counted)
    ratio[(counted == 0) | ~np.isfinite(distances[:, 0])] = np.nan
    return np.where(np.isfinite(ratio), ratio, np.nan).astype(np.float32)
