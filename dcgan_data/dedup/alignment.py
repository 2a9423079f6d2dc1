"""The second look: an affine map fitted to a pair's grey thumbnails (OpenCV's ECC), kept
only when close to a plain move, then the pair's features once aligned."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cv2
import numpy as np
import torch

from dcgan_data.dedup.features import FEATURES, pair_features
from dcgan_data.dedup.thumbnails import COLOUR, GREY

ALIGN_SCALES = (0.8, 1.25)  # a fitted alignment must keep each axis' scale within these...
ALIGN_MOVE = 3.0  # ...and move the centre by at most this many grey-thumbnail pixels
ALIGN_STEPS = 10  # ECC iterations at most (about 40 us each on a 32x32 pair)
PAD_SCALES = (0.6, 1 / 0.6)  # the scales let through when the frame beyond is a flat fill
PAD_MIN_SHARE = 0.05  # share of the image a frame must cover
PAD_FLAT_LEVELS = 6  # grey levels from the frame's median...
PAD_FLAT_SHARE = 0.8  # ...within which this share of it must lie: a fill, not a scene


def fitted_alignment(fixed: np.ndarray, moving: np.ndarray) -> np.ndarray | None:
    """The (2, 3) affine map W with moving(W x) ~ fixed(x) for two grey thumbnails, or None
    when ECC converges to nothing close to a plain move: no axis scaled beyond ALIGN_SCALES,
    the centre moved at most ALIGN_MOVE. A pad is let through up to PAD_SCALES: a smaller
    scale when what the smaller image holds beyond the other's frame is a flat fill. ECC
    starts from no move, then, when either image has a flat frame and until a start ends in
    a plain move, from a pad's and a trim's scale."""
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, ALIGN_STEPS, 1e-4)
    starts = [1.0]
    if _framed(fixed) or _framed(moving):  # a pad's frame: worth two more starts
        starts += [PAD_SCALES[0] ** 0.5, PAD_SCALES[1] ** 0.5]
    template, image = fixed.astype(np.float32), moving.astype(np.float32)
    for start in starts:
        try:
            _, warp = cv2.findTransformECC(template, image, _scaled_about_centre(start),
                                           cv2.MOTION_AFFINE, criteria, None, 5)
        except cv2.error:  # no convergence, or no texture
            continue
        if _plain_move(warp, fixed, moving):
            return warp
    return None


def _scaled_about_centre(scale: float) -> np.ndarray:
    warp = np.eye(2, 3, dtype=np.float32) * np.float32(scale)
    warp[:, 2] = (GREY - 1) / 2 * (1 - scale)
    return warp


def _plain_move(warp: np.ndarray, fixed: np.ndarray, moving: np.ndarray) -> bool:
    scales = np.linalg.svd(warp[:, :2], compute_uv=False)
    centre = np.full(2, (GREY - 1) / 2, np.float32)
    if np.linalg.norm(warp[:, :2] @ centre + warp[:, 2] - centre) > ALIGN_MOVE:
        return False
    if ALIGN_SCALES[0] <= scales.min() and scales.max() <= ALIGN_SCALES[1]:
        return True
    ones = np.ones((GREY, GREY), np.uint8)
    if PAD_SCALES[0] <= scales.min() and scales.max() <= 1.0:  # moving holds fixed, framed
        return _flat_outside(moving, cv2.warpAffine(ones, warp, (GREY, GREY),
                                                    flags=cv2.INTER_NEAREST))
    if 1.0 <= scales.min() and scales.max() <= PAD_SCALES[1]:  # fixed holds moving, framed
        return _flat_outside(fixed, cv2.warpAffine(ones, warp, (GREY, GREY),
                                                   flags=cv2.INTER_NEAREST |
                                                   cv2.WARP_INVERSE_MAP))
    return False


def _flat_outside(image: np.ndarray, inside: np.ndarray) -> bool:
    """Whether the image beyond `inside` (2 px of blurred edge aside) is mostly one fill."""
    outside = cv2.dilate(inside, np.ones((5, 5), np.uint8)) == 0
    if outside.mean() < PAD_MIN_SHARE:
        return False
    levels = image[outside].astype(np.int16)
    return np.mean(np.abs(levels - np.median(levels)) <= PAD_FLAT_LEVELS) >= PAD_FLAT_SHARE


def _framed(image: np.ndarray) -> bool:
    """Whether the outer 2 px of a grey thumbnail are mostly one fill (perhaps a pad)."""
    inside = np.zeros_like(image, np.uint8)
    inside[4:-4, 4:-4] = 1
    return _flat_outside(image, inside)


def _colour_alignment(warp: np.ndarray) -> np.ndarray:
    """A grey-thumbnail map in the colour thumbnail's pixel coordinates (same scene)."""
    s = COLOUR / GREY
    out = warp.copy()
    out[:, 2] = warp[:, :2] @ np.full(2, 0.5 * (1 - s), np.float32) + s * warp[:, 2] + \
        0.5 * (s - 1)
    return out


def aligned_pair_features(grey: np.ndarray, colour: np.ndarray, a: np.ndarray, b: np.ndarray,
                          mirrors: bool = False, device: str = "cpu",
                          fitted: Callable[[int], Any] | None = None
                          ) -> tuple[np.ndarray, np.ndarray]:
    """`pair_features` of each pair after b is warped onto a by `fitted_alignment`, and
    whether a small alignment was found (where not, the row of features is NaN). FITTED is
    called with 1 as each pair's fit ends (a progress bar's update)."""
    warps = []
    # OpenCV lets go of the GIL while it fits: one thread per core
    with ThreadPoolExecutor(max(1, torch.get_num_threads())) as pool:
        for warp in pool.map(fitted_alignment, grey[a], grey[b]):
            warps.append(warp)
            if fitted is not None:
                fitted(1)
    found = np.array([warp is not None for warp in warps], bool)
    features = np.full((len(a), len(FEATURES)), np.nan, np.float32)
    aligned = np.flatnonzero(found)  # only these: the others' features are the plain ones
    if not len(aligned):
        return features, found
    k = len(aligned)
    warped_grey = np.empty((k, GREY, GREY), np.uint8)
    warped_colour = np.empty((k, COLOUR, COLOUR, 3), np.uint8)
    flags, border = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, cv2.BORDER_REFLECT
    for i, pair in enumerate(aligned):
        warp, y = warps[pair], b[pair]
        warped_grey[i] = cv2.warpAffine(grey[y], warp, (GREY, GREY), flags=flags,
                                        borderMode=border)
        warped_colour[i] = cv2.warpAffine(colour[y], _colour_alignment(warp),
                                          (COLOUR, COLOUR), flags=flags, borderMode=border)
    features[found] = pair_features(np.concatenate([grey[a[found]], warped_grey]),
                                    np.concatenate([colour[a[found]], warped_colour]),
                                    np.arange(k), k + np.arange(k), mirrors, device)
    return features, found
