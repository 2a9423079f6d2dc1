"""Views of grey thumbnails (zoomed, rotated, mirrored) and their DCT descriptors: batched
tensor code, the same on CPU and GPU."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from dcgan_data.dedup.thumbnails import GREY

DCT_SIDE = 8  # low-frequency block of the DCT descriptor
BLUR = 1.0  # Gaussian sigma before correlating: sub-pixel misalignments do not count
ZOOMS = (1.12, 1.25)  # zoomed-in views (a 5-10% trim or a pad, seen from the other side)
CENTRE = ZOOMS[0]  # both images zoomed in: borders a rotation or perspective filled left out
ROTATIONS = (-3.5, 3.5)  # degrees
PAIR_CHUNK = 1024
CLIP_SHARE = 0.05  # clipped descriptors: the share of levels clipped at either end


@lru_cache(maxsize=16)
def box_rows(side: int, length: int, starts: tuple[int, ...], device: str,
             dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(len(starts), side) rows of ones over [start, start + length): R X R^T holds the sum
    of every box of X that starts at a pair of `starts` (two small matrix products)."""
    rows = torch.zeros(len(starts), side, dtype=dtype)
    for i, start in enumerate(starts):
        rows[i, start : start + length] = 1
    return rows.to(device)


def view(grey: torch.Tensor, zoom: float = 1.0, degrees: float = 0.0,
          mirror: bool = False) -> torch.Tensor:
    """(N, 1, 32, 32) float views of grey thumbnails: zoomed in about the centre, rotated,
    mirrored; borders reflect. Without rotation a view is separable, two small matrix
    products, far cheaper on a CPU than resampling each pixel."""
    if (zoom, degrees, mirror) == (1.0, 0.0, False):
        return grey
    if degrees == 0.0:
        side, device = grey.shape[-1], str(grey.device)
        return separable(grey, _axis_map(zoom, False, side, device),
                          _axis_map(zoom, mirror, side, device))
    return resampled(grey.flip(-1) if mirror else grey, zoom, degrees)


def separable(images: torch.Tensor, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """left @ X @ right^T for every (C, S, S) image X."""
    return left @ (images @ right.t())


def resampled(grey: torch.Tensor, zoom: float, degrees: float) -> torch.Tensor:
    grid = _grid(zoom, degrees, grey.shape[-1], str(grey.device))
    return F.grid_sample(grey, grid.expand(len(grey), -1, -1, -1), mode="bilinear",
                         padding_mode="reflection", align_corners=False)


@lru_cache(maxsize=16)
def _grid(zoom: float, degrees: float, side: int, device: str) -> torch.Tensor:
    """The sampling grid of a view, the same for every image."""
    angle = math.radians(degrees)
    theta = torch.tensor([[[math.cos(angle) / zoom, -math.sin(angle) / zoom, 0.0],
                           [math.sin(angle) / zoom, math.cos(angle) / zoom, 0.0]]])
    return F.affine_grid(theta, [1, 1, side, side], align_corners=False).to(device)


@lru_cache(maxsize=16)
def _axis_map(zoom: float, mirror: bool, side: int, device: str) -> torch.Tensor:
    """(side, side) map A of one axis such that a zoom view is A_y X A_x^T: read off the
    resampler applied to images that vary along x only (each row of the result is A e_i)."""
    basis = torch.eye(side)[:, None, None, :].expand(side, 1, side, side).contiguous()
    if mirror:
        basis = basis.flip(-1)
    columns = basis if zoom == 1.0 else resampled(basis, zoom, 0.0)
    return columns[:, 0, side // 2, :].t().contiguous().to(device)


@lru_cache(maxsize=4)
def _dct_matrix(device: str) -> torch.Tensor:
    """(8, 32) rows of the orthonormal DCT-II basis: the low frequencies of a 32-point DCT."""
    k = torch.arange(DCT_SIDE, dtype=torch.float32)[:, None]
    x = torch.arange(GREY, dtype=torch.float32)[None, :]
    basis = torch.cos(math.pi * (2 * x + 1) * k / (2 * GREY)) * math.sqrt(2 / GREY)
    basis[0] /= math.sqrt(2)
    return basis.to(device)


def low_dct(view: torch.Tensor) -> torch.Tensor:
    """(N, 1, 32, 32) -> (N, 64) low-frequency DCT coefficients (DC first)."""
    basis = _dct_matrix(str(view.device))
    return (basis @ view[:, 0] @ basis.t()).flatten(1)


def unit_descriptor(coefficients: torch.Tensor) -> torch.Tensor:
    """Unit-length DCT descriptor without the DC term: blind to brightness and contrast."""
    ac = coefficients[:, 1:]
    return ac / ac.norm(dim=1, keepdim=True).clamp_min(1e-6)


@lru_cache(maxsize=8)
def blur_matrix(device: str, sigma: float = BLUR, side: int = GREY) -> torch.Tensor:
    """(side, side) Gaussian blur of one axis with reflected borders: blurred = B X B^T."""
    radius = int(math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-x * x / (2 * sigma * sigma))
    padded = F.pad(torch.eye(side)[:, None, :], (radius, radius), mode="reflect")
    rows = F.conv1d(padded, (kernel / kernel.sum()).view(1, 1, -1))[:, 0]  # row i: B e_i
    return rows.t().contiguous().to(device)


def standardised(view: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Blurred, zero-mean, unit-std views and their grey std before standardising."""
    blur = blur_matrix(str(view.device))
    blurred = separable(view, blur, blur)
    centred = blurred - blurred.mean(dim=(1, 2, 3), keepdim=True)
    std = (centred.square().sum(dim=(1, 2, 3)) / (centred[0].numel() - 1)).sqrt()
    return centred / std.clamp_min(1e-3)[:, None, None, None], std


def descriptors(grey: np.ndarray, zoom: float = 1.0, mirror: bool = False,
                clipped: bool = False, device: str = "cpu") -> np.ndarray:
    """(N, 63) float32 unit DCT descriptors of (N, 32, 32) uint8 grey thumbnails' views;
    `clipped`: each thumbnail's levels clipped to its CLIP_SHARE and 1 - CLIP_SHARE
    quantiles first, so that a small overlay far brighter or darker than the scene (an emoji
    on a sky) barely moves the descriptor."""
    out = np.empty((len(grey), DCT_SIDE * DCT_SIDE - 1), np.float32)
    for start in range(0, len(grey), PAIR_CHUNK * 4):
        part = torch.from_numpy(grey[start : start + PAIR_CHUNK * 4]).to(device).float()
        if clipped:
            levels = torch.quantile(part.flatten(1), torch.tensor(
                [CLIP_SHARE, 1 - CLIP_SHARE], device=device), dim=1)[:, :, None, None]
            part = torch.minimum(torch.maximum(part, levels[0]), levels[1])
        seen = view(part[:, None], zoom, mirror=mirror)
        out[start : start + len(part)] = unit_descriptor(low_dct(seen)).cpu().numpy()
    return out
