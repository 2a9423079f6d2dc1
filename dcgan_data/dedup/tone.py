"""The tone look: a pair compared again after each thumbnail is equalised on its own (every
level replaced by its rank among the thumbnail's levels), so that a global tone curve
(histogram equalisation, CLAHE's global part, gamma, a strong contrast or levels edit) no
longer counts as a difference: ranks survive any increasing remapping of levels."""

from __future__ import annotations

import numpy as np

from dcgan_data.dedup.features import pair_features

LEVELS = 256


def equalised(images: np.ndarray) -> np.ndarray:
    """uint8 images (N, H, W) or (N, H, W, C), each (channel) with its levels replaced by
    their mean rank scaled to 0-255: histogram equalisation with ties kept tied, so that a
    flat region stays flat rather than becoming a ramp in pixel order."""
    channels = images if images.ndim == 4 else images[..., None]
    n, c = len(channels), channels.shape[-1]
    planes = np.moveaxis(channels, -1, 1).reshape(n * c, -1)
    size = planes.shape[1]
    offsets = (np.arange(n * c) * LEVELS)[:, None]
    counts = np.bincount((planes + offsets).ravel(), minlength=n * c * LEVELS) \
        .reshape(n * c, LEVELS)
    below = np.cumsum(counts, axis=1) - counts
    mean_rank = below + (counts - 1) / 2  # of the pixels at each level
    levels = np.take_along_axis(mean_rank, planes.astype(np.int64), axis=1) * \
        (255 / max(1, size - 1))
    out = np.moveaxis(levels.round().astype(np.uint8).reshape(n, c, *channels.shape[1:-1]),
                      1, -1)
    return out if images.ndim == 4 else out[..., 0]


def tone_free_pair_features(grey: np.ndarray, colour: np.ndarray, a: np.ndarray,
                            b: np.ndarray, mirrors: bool = False, device: str = "cpu"
                            ) -> np.ndarray:
    """`pair_features` of the pairs (a[i], b[i]) on their `equalised` thumbnails."""
    rows, index = np.unique(np.r_[a, b], return_inverse=True)
    return pair_features(equalised(grey[rows]), equalised(colour[rows]), index[: len(a)],
                         index[len(a) :], mirrors, device)
