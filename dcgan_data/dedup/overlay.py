"""The overlay look: a pair compared again after the window where the two differ most (an
emoji, a caption drawn on a copy) is filled in on both from around it."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from dcgan_data.dedup.features import FEATURES, PLAIN, chunk_features, grey_tensor
from dcgan_data.dedup.thumbnails import COLOUR, GREY
from dcgan_data.dedup.views import PAIR_CHUNK, blur_matrix, box_rows, separable, standardised

# (rows, columns), in grey-thumbnail pixels, of the windows an overlay look may fill: an
# emoji's square, a caption's strip
OVERLAY_SHAPES = ((10, 10), (6, 16))
# an overlay is one compact difference: its window must hold at least this share of the
# pair's difference (squared, standardised views); filling one window of a scene that
# differs all over cannot make a copy of it
OVERLAY_MIN_SHARE = 0.5
FILL_BLUR = 3.0  # sigma, in grey-thumbnail pixels, of what fills that window
FILL_FLOOR = 0.01  # weight of the kept pixels' mean in that fill


def unoverlaid_pair_features(grey: np.ndarray, colour: np.ndarray, a: np.ndarray,
                             b: np.ndarray, device: str = "cpu") -> np.ndarray:
    """`pair_features` of the pairs as they lie (no other view), after the OVERLAY_SHAPES
    window where the two images differ most, such as an emoji or a caption drawn on one, is
    filled in both from around it; NaN for pairs whose difference that window holds less
    than OVERLAY_MIN_SHARE of (no overlay to fill)."""
    out = np.full((len(a), len(FEATURES)), np.nan, np.float32)
    compact = np.flatnonzero(overlay_shares(grey, a, b, device) >= OVERLAY_MIN_SHARE)
    for start in range(0, len(compact), PAIR_CHUNK):
        part = compact[start : start + PAIR_CHUNK]
        grey_pairs, colour_pairs = without_overlay(grey, colour, a[part], b[part], device)
        k = len(part)
        out[part] = chunk_features(grey_pairs, colour_pairs, np.arange(k), k + np.arange(k),
                                   [(PLAIN, PLAIN)], device)[0].cpu().numpy()
    return out


def overlay_shares(grey: np.ndarray, a: np.ndarray, b: np.ndarray, device: str = "cpu"
                   ) -> np.ndarray:
    """The share of each pair's difference that its overlay window holds (0 where the two
    do not differ)."""
    out = np.empty(len(a), np.float64)
    for start in range(0, len(a), 4 * PAIR_CHUNK):
        part = slice(start, start + 4 * PAIR_CHUNK)
        energy = _difference(grey_tensor(grey, a[part], device),
                             grey_tensor(grey, b[part], device))
        most = _overlay_window(energy)[0]
        out[part] = (most / energy.sum(dim=(1, 2)).clamp_min(1e-12)).cpu().numpy()
    return out


def _difference(ga: torch.Tensor, gb: torch.Tensor) -> torch.Tensor:
    """(N, S, S) float64 squared difference of the pairs' standardised views."""
    return (standardised(ga)[0] - standardised(gb)[0]).square()[:, 0].double()


def without_overlay(grey: np.ndarray, colour: np.ndarray, a: np.ndarray, b: np.ndarray,
                    device: str) -> tuple[np.ndarray, np.ndarray]:
    """The thumbnails of a's rows then b's, each pair's overlay filled by a normalised
    convolution (the blur of the pixels kept over the blur of the mask)."""
    ga, gb = (grey_tensor(grey, x, device) for x in (a, b))
    keep = _outside_overlay(_difference(ga, gb))
    keep_colour = (F.avg_pool2d(keep, GREY // COLOUR) == 1).float()
    ca, cb = (torch.from_numpy(colour[x]).to(device).float().permute(0, 3, 1, 2)
              for x in (a, b))
    # a pair's two images side by side as channels: they share the mask and its blur
    grey_out = _filled(torch.cat([ga, gb], dim=1), keep, FILL_BLUR).transpose(0, 1) \
        .reshape(-1, GREY, GREY)
    colour_out = _filled(torch.cat([ca, cb], dim=1), keep_colour, FILL_BLUR * COLOUR / GREY) \
        .view(len(a), 2, 3, COLOUR, COLOUR).transpose(0, 1).reshape(-1, 3, COLOUR, COLOUR) \
        .permute(0, 2, 3, 1)
    return tuple(x.round().clamp(0, 255).to(torch.uint8).cpu().numpy()
                 for x in (grey_out, colour_out))


def _outside_overlay(energy: torch.Tensor) -> torch.Tensor:
    """(N, 1, S, S) 1 outside, 0 inside the window, of any of OVERLAY_SHAPES, holding the
    most of each pair's difference ENERGY (N, S, S): one compact overlay, not the scattered
    places where two scenes differ."""
    box = _overlay_window(energy)[1]
    side = torch.arange(energy.shape[-1], device=energy.device)[None, :]
    rows = (side >= box[:, :1]) & (side < box[:, 2:3])
    columns = (side >= box[:, 1:2]) & (side < box[:, 3:])
    return 1 - (rows[:, :, None] & columns[:, None, :]).float()[:, None]


def _overlay_window(energy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The energy (N, S, S) each pair's best window of OVERLAY_SHAPES holds, and that
    window's (top, left, bottom, right)."""
    size = energy.shape[-1]
    most = torch.full((len(energy),), -1.0, device=energy.device, dtype=energy.dtype)
    box = torch.zeros((len(energy), 4), dtype=torch.long, device=energy.device)
    for height, width in OVERLAY_SHAPES:
        # every window's sum (double: rounding does not pick among near-equal windows)
        tall, wide = (box_rows(size, length, tuple(range(size - length + 1)),
                               str(energy.device), torch.float64) for length in (height, width))
        window = tall @ energy @ wide.t()
        value, corner = window.flatten(1).max(dim=1)
        y, x = corner // window.shape[-1], corner % window.shape[-1]
        better = value > most
        most = torch.where(better, value, most)
        box[better] = torch.stack([y, x, y + height, x + width], dim=1)[better]
    return most, box


def _filled(images: torch.Tensor, keep: torch.Tensor, sigma: float) -> torch.Tensor:
    """Images whose pixels outside `keep` are the weighted mean of the kept ones nearby
    (far from any, the mean of all kept ones)."""
    blur = blur_matrix(str(images.device), sigma, images.shape[-1])
    kept_mean = (images * keep).sum(dim=(2, 3), keepdim=True) / \
        keep.sum(dim=(2, 3), keepdim=True).clamp_min(1)
    smooth = (separable(images * keep, blur, blur) + FILL_FLOOR * kept_mean) / \
        (separable(keep, blur, blur) + FILL_FLOOR)
    return keep * images + (1 - keep) * smooth
