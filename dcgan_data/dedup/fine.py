"""The fine look: how alike two rows are at 64 px, after the best small shift.

The verifier decides on 32 px thumbnails, where a re-encoded or slightly moved copy and a
crop of the same scene a few pixels over and a degree turned look the same. At 64 px the
copy still matches its original after a shift of a pixel or two, while the look-alike does
not. So the grouping takes verified pairs in the order of this likeness: a copy in a region
of look-alikes joins its own original first. It orders pairs; it decides none.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import cv2
import numpy as np

from dcgan_data.core.images import resize_square
from dcgan_data.core.shards import ShardSet
from dcgan_data.dedup.features import local_order

SIDE = 64  # rows are compared at this side
SHIFT = 3  # largest shift tried, in pixels of SIDE, each way
CHUNK = 1 << 12  # pairs whose rows are looked at together: bounds the memory of the look
LOAD_BATCH = 256  # rows read at their stored side at a time (shards may hold large rows)


def fine_grey(rows: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 rows -> (N, SIDE, SIDE) float32 grey."""
    out = np.empty((len(rows), SIDE, SIDE), np.float32)
    for i, row in enumerate(rows):
        out[i] = resize_square(cv2.cvtColor(np.ascontiguousarray(row), cv2.COLOR_RGB2GRAY), SIDE)
    return out


def fine_rows(shards: ShardSet, other: ShardSet | None) -> Callable[[np.ndarray], np.ndarray]:
    """The `fine_grey` of rows by index: SRC's rows, then --against's (OTHER)."""
    def read(source: ShardSet, rows: np.ndarray) -> np.ndarray:
        return np.concatenate([fine_grey(source.load(rows[start : start + LOAD_BATCH]))
                               for start in range(0, len(rows), LOAD_BATCH)]) \
            if len(rows) else np.empty((0, SIDE, SIDE), np.float32)

    def load(rows: np.ndarray) -> np.ndarray:
        ours = rows < len(shards)
        grey = np.empty((len(rows), SIDE, SIDE), np.float32)
        grey[ours] = read(shards, rows[ours])
        if not ours.all():  # --against's rows (none without OTHER: fails)
            grey[~ours] = read(other, rows[~ours] - len(shards))
        return grey
    return load


def likeness(load: Callable[[np.ndarray], np.ndarray], a: np.ndarray, b: np.ndarray,
             mirrors: bool = False, threads: int = 1) -> np.ndarray:
    """Correlation of the pairs (a[i], b[i]) of rows (LOAD gives their `fine_grey` by index):
    the middle of a's image against b's at the best shift of up to SHIFT pixels (or of b's
    mirror image, with MIRRORS). Between -1 and 1; a flat image is like nothing (0).
    One-sided: the template is a's middle. Candidate pairs come with a < b, so across a
    row's pairs the template is the lower row's, a choice that costs half of looking both
    ways. OpenCV's matching lets go of the GIL: THREADS share each chunk's pairs."""
    out = np.empty(len(a), np.float32)
    if not len(a):
        return out
    order = local_order(a, b, int(max(a.max(), b.max())) + 1)  # a chunk's pairs share rows
    with ThreadPoolExecutor(max(1, threads)) as pool:
        for start in range(0, len(a), CHUNK):
            part = order[start : start + CHUNK]
            rows, index = np.unique(np.concatenate([a[part], b[part]]), return_inverse=True)
            grey = load(rows)
            flat = (np.ptp(grey[:, SHIFT : SIDE - SHIFT, SHIFT : SIDE - SHIFT], axis=(1, 2)) == 0,
                    np.ptp(grey, axis=(1, 2)) == 0)  # as a template, as the image searched
            first, second = (np.array_split(x, max(1, threads))
                             for x in (index[: len(part)], index[len(part) :]))
            out[part] = np.concatenate(list(pool.map(
                partial(_matches, grey, flat, mirrors), first, second)))
    return out


def _matches(grey: np.ndarray, flat: tuple[np.ndarray, np.ndarray], mirrors: bool,
             first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The likeness of the rows (first[i], second[i]) of GREY; 0 where either is flat (as
    the template or as the image searched: FLAT)."""
    return np.array([0.0 if flat[0][i] or flat[1][j] else
                     _best_match(grey[i], grey[j], mirrors)
                     for i, j in zip(first.tolist(), second.tolist(), strict=True)], np.float32)


def _best_match(first: np.ndarray, second: np.ndarray, mirrors: bool) -> float:
    """The best correlation of FIRST's middle with SECOND at any shift up to SHIFT."""
    middle = first[SHIFT : SIDE - SHIFT, SHIFT : SIDE - SHIFT]
    best = cv2.matchTemplate(second, middle, cv2.TM_CCOEFF_NORMED).max()
    if mirrors:
        mirrored = np.ascontiguousarray(second[:, ::-1])
        best = max(best, cv2.matchTemplate(mirrored, middle, cv2.TM_CCOEFF_NORMED).max())
    return float(best) if np.isfinite(best) else 0.0
