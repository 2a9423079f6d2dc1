"""The fine look: how alike two rows are at 64 px, after the best small shift.

The verifier decides on 32 px thumbnails, where a re-encoded or slightly moved copy and a
crop of the same scene a few pixels over and a degree turned look the same. At 64 px the
copy still matches its original after a shift of a pixel or two, while the look-alike does
not. So the grouping takes verified pairs in the order of this likeness: a copy in a region
of look-alikes joins its own original first. It orders pairs; it decides none.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import torch

from dcgan_data.core.files import progress
from dcgan_data.core.images import resize_square
from dcgan_data.core.shards import ShardSet
from dcgan_data.dedup.features import local_order, shift_correlation

SIDE = 64  # rows are compared at this side
SHIFT = 3  # largest shift tried, in pixels of SIDE, each way
CHUNK = 1 << 12  # pairs whose rows are looked at together: bounds the memory of the look
LOAD_BATCH = 256  # rows read at their stored side at a time (shards may hold large rows)


def fine_grey(rows: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 rows -> (N, SIDE, SIDE) float32 grey."""
    n, height, width = rows.shape[:3]
    # one conversion for the whole batch: the rows stacked are one tall image
    grey = cv2.cvtColor(np.ascontiguousarray(rows).reshape(n * height, width, 3),
                        cv2.COLOR_RGB2GRAY).reshape(n, height, width) if n else \
        np.empty((0, height, width), np.uint8)
    if (height, width) == (SIDE, SIDE):
        return grey.astype(np.float32)
    out = np.empty((n, SIDE, SIDE), np.float32)
    for i, row in enumerate(grey):
        out[i] = resize_square(row, SIDE)
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
             mirrors: bool = False, device: str = "cpu") -> np.ndarray:
    """Correlation of the pairs (a[i], b[i]) of rows (LOAD gives their `fine_grey` by index):
    the middle of a's image against b's at the best shift of up to SHIFT pixels (or of b's
    mirror image, with MIRRORS), as OpenCV's normed correlation coefficient. Between -1 and
    1; a flat image is like nothing (0). One-sided: the template is a's middle. Candidate
    pairs come with a < b, so across a row's pairs the template is the lower row's, a choice
    that costs half of looking both ways."""
    out = np.empty(len(a), np.float32)
    if not len(a):
        return out
    order = local_order(a, b, int(max(a.max(), b.max())) + 1)  # a chunk's pairs share rows
    with progress(total=len(a), desc="fine look", unit="pair", leave=False) as bar:
        for start in range(0, len(a), CHUNK):
            part = order[start : start + CHUNK]
            rows, index = np.unique(np.concatenate([a[part], b[part]]), return_inverse=True)
            first, second = (torch.from_numpy(x).to(device)
                             for x in (index[: len(part)], index[len(part) :]))
            grey = torch.from_numpy(load(rows)).to(device)
            out[part] = _matches(grey, first, second, mirrors).cpu().numpy()
            bar.update(len(part))
    return out


def _matches(grey: torch.Tensor, first: torch.Tensor, second: torch.Tensor, mirrors: bool
             ) -> torch.Tensor:
    """The likeness of the rows (first[i], second[i]) of GREY (R, SIDE, SIDE); 0 where
    either is flat (as the template, its middle; as the image searched, all of it)."""
    middle = grey[:, SHIFT : SIDE - SHIFT, SHIFT : SIDE - SHIFT].flatten(1)
    flat = (middle.amax(1) == middle.amin(1))[first] | \
        (grey.flatten(1).amax(1) == grey.flatten(1).amin(1))[second]
    # correlation does not change with each image's level and contrast: standardised first,
    # the window sums stay well within float32's precision
    centred = grey - grey.mean(dim=(1, 2), keepdim=True)
    spread = centred.square().mean(dim=(1, 2), keepdim=True).sqrt().clamp_min(1e-3)
    views = (centred / spread)[:, None]
    best = shift_correlation(views, views, first, second, SHIFT, SHIFT)
    if mirrors:
        best = torch.maximum(best, shift_correlation(views, views.flip(-1), first, second,
                                                     SHIFT, SHIFT))
    return torch.where(flat | ~best.isfinite(), 0.0, best.clamp(-1, 1))
