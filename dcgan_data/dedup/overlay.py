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
FILL_BLUR = 3.0  # sigma, in grey-thumbnail pixels, of what fills that window
FILL_FLOOR = 0.01  # weight of the kept pixels' mean in that fill


def unoverlaid_pair_features(grey: np.ndarray, colour: np.ndarray, a: np.ndarray,
                             b: np.ndarray, device: str = "cpu") -> np.ndarray:
    """`pair_features` of the pairs as they lie (no other view), after the OVERLAY_SHAPES
    window where the two images differ most, such as an emoji or a caption drawn on one, is
    filled in both from around it."""
    out = np.empty((len(a), len(FEATURES)), np.float32)
    for start in range(0, len(a), PAIR_CHUNK):
        part = slice(start, start + PAIR_CHUNK)
        grey_pairs, colour_pairs = without_overlay(grey, colour, a[part], b[part], device)
        k = len(grey_pairs) // 2
        out[part] = chunk_features(grey_pairs, colour_pairs, np.arange(k), k + np.arange(k),
                                    [(PLAIN, PLAIN)], device)[0].cpu().numpy()
    return out


def without_overlay(grey: np.ndarray, colour: np.ndarray, a: np.ndarray, b: np.ndarray,
                     device: str) -> tuple[np.ndarray, np.ndarray]:
    """The thumbnails of a's rows then b's, each pair's overlay filled by a normalised
    convolution (the blur of the pixels kept over the blur of the mask)."""
    ga, gb = (grey_tensor(grey, x, device) for x in (a, b))
    keep = _outside_overlay(standardised(ga)[0] - standardised(gb)[0])
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


def _outside_overlay(difference: torch.Tensor) -> torch.Tensor:
    """1 outside, 0 inside the window, of any of OVERLAY_SHAPES, holding the most of each
    difference's energy (N, 1, S, S): one compact overlay, not the scattered places where
    two scenes differ."""
    energy = difference.square()[:, 0].double()
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
    side = torch.arange(difference.shape[-1], device=difference.device)[None, :]
    rows = (side >= box[:, :1]) & (side < box[:, 2:3])
    columns = (side >= box[:, 1:2]) & (side < box[:, 3:])
    return 1 - (rows[:, :, None] & columns[:, None, :]).float()[:, None]


def _filled(images: torch.Tensor, keep: torch.Tensor, sigma: float) -> torch.Tensor:
    """Images whose pixels outside `keep` are the weighted mean of the kept ones nearby
    (far from any, the mean of all kept ones)."""
    blur = blur_matrix(str(images.device), sigma, images.shape[-1])
    kept_mean = (images * keep).sum(dim=(2, 3), keepdim=True) / \
        keep.sum(dim=(2, 3), keepdim=True).clamp_min(1)
    smooth = (separable(images * keep, blur, blur) + FILL_FLOOR * kept_mean) / \
        (separable(keep, blur, blur) + FILL_FLOOR)
    return keep * images + (1 - keep) * smooth
