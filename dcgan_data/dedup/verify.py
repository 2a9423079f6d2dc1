"""Candidate pairs from a perceptual descriptor, and their verification on the images.

Hashes are fast but blunt: equal hashes miss copies whose colour, contrast or framing changed,
and a generous rule (nearby hashes, shared probe hashes) also joins unrelated low-texture
images. So dedup proposes candidate pairs generously and decides each one here, on small
thumbnails of the two images:

* every row keeps a 32x32 grey thumbnail and an 8x8 colour one (1.2 KB);
* candidates: each image's nearest neighbours (exact, or inverted lists at scale) by a DCT
  descriptor of its grey thumbnail (low frequencies, without the mean, unit length: blind to
  brightness, contrast and colour), queried also with zoomed-in views of the image, so that
  a copy trimmed at the border or framed by padding is found from either side; then the
  centres among the centres (warps with black corners) and the level-clipped views among
  the level-clipped views (a bright emoji on a dim scene);
* verification: the second image is aligned to the first over a few views (as is, zoomed in
  either image, rotated a few degrees) and small shifts; at the best view, a handful of
  features (grey correlation, with and without the pixels that differ most, DCT agreement,
  level-free colour difference, contrast ratio, how much texture the images have, fine
  detail, chroma) go through a logistic model fitted on this project's
  own near-duplicate edits (`bench/fit_verify.py`, `verify_model.json`). A pair is a
  duplicate when the model's log-odds pass the model's threshold (or `--verify-threshold`).
* pairs that fall just short (a perspective change, a pad or a rotation between the fixed
  views) get a second look: an affine map fitted to their grey thumbnails (OpenCV's ECC),
  kept only when it is close to a plain move (no axis scaled beyond ALIGN_SCALES, the centre
  moved at most ALIGN_MOVE), then the same features on the aligned pair. The model's
  `align_band` says which pairs get it and `align_margin` how much more the aligned pair must
  score, both set by `bench/fit_verify.py` at the same precision target.
* pairs still short, within the model's `overlay_band`, get an overlay look: the square or
  strip where the two differ most (an emoji, a caption) is filled in on both from around it and
  the pair is scored again, passing only by `overlay_margin` more (fitted alike).
* every pair also gets a chroma look, from the same pass: the stronger chroma of the two
  scaled toward the weaker (a copy made grey, paler or more vivid differs in colour only
  where its hue moved), passing only by `chroma_margin` more (fitted alike).

Everything but the second look's alignment (OpenCV, pair by pair, on the CPU) is batched
tensor code: the same on CPU and GPU.
"""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from dcgan_data.core.images import LUMA

GREY = 32  # grey thumbnail side
COLOUR = 8  # colour thumbnail side
DCT_SIDE = 8  # low-frequency block of the DCT descriptor
SHIFT = 1  # alignment shifts, in grey-thumbnail pixels, on each axis
MARGIN = 2  # border left out of the correlation (room for the shifts)
BLUR = 1.0  # Gaussian sigma before correlating: sub-pixel misalignments do not count
DETAIL_BLUR = 2.0  # sigma of the coarse layout taken away before comparing fine detail
ZOOMS = (1.12, 1.25)  # zoomed-in views (a 5-10% trim or a pad, seen from the other side)
CENTRE = ZOOMS[0]  # both images zoomed in: borders a rotation or perspective filled left out
ROTATIONS = (-3.5, 3.5)  # degrees
MODEL_FILE = Path(__file__).with_name("verify_model.json")
PAIR_CHUNK = 1024
ALIGN_SCALES = (0.8, 1.25)  # a fitted alignment must keep each axis' scale within these...
ALIGN_MOVE = 3.0  # ...and move the centre by at most this many grey-thumbnail pixels
ALIGN_STEPS = 50  # ECC iterations at most (each costs about 40 us on a 32x32 pair)
PAD_SCALES = (0.6, 1 / 0.6)  # the scales let through when the frame beyond is a flat fill
PAD_MIN_SHARE = 0.05  # share of the image a frame must cover
PAD_FLAT_LEVELS = 6  # grey levels from the frame's median...
PAD_FLAT_SHARE = 0.8  # ...within which this share of it must lie: a fill, not a scene
CLIP_SHARE = 0.05  # clipped descriptors: the share of levels clipped at either end
OVERLAY_SHARE = 0.1  # share of the compared pixels an overlay (a sticker, a caption) may cover
# (rows, columns), in grey-thumbnail pixels, of the windows an overlay look may fill: an
# emoji's square, a caption's strip
OVERLAY_SHAPES = ((10, 10), (6, 16))
FILL_BLUR = 3.0  # sigma, in grey-thumbnail pixels, of what fills that window
FILL_FLOOR = 0.01  # weight of the kept pixels' mean in that fill
CHROMA_MIN_TEXTURE = 0.5  # grey-level texture both images need for the chroma look...
CHROMA_MIN_COSINE = 0.9  # ...and chroma this alike in direction, unless one is grey:
CHROMA_GREY = 1.0  # RMS chroma, in levels, below which an image counts as grey


# --- thumbnails ----------------------------------------------------------------------------


def thumbnails(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, H, W, 3) uint8 rows -> (N, 32, 32) uint8 grey and (N, 8, 8, 3) uint8 colour."""
    rows = np.ascontiguousarray(rows)
    n = len(rows)
    grey = np.empty((n, GREY, GREY), np.uint8)
    colour = np.empty((n, COLOUR, COLOUR, 3), np.uint8)
    for i, row in enumerate(rows):
        grey[i] = cv2.resize(cv2.cvtColor(row, cv2.COLOR_RGB2GRAY), (GREY, GREY),
                             interpolation=cv2.INTER_AREA)
        colour[i] = cv2.resize(row, (COLOUR, COLOUR), interpolation=cv2.INTER_AREA)
    return grey, colour


# --- views and descriptors -----------------------------------------------------------------


def _view(grey: torch.Tensor, zoom: float = 1.0, degrees: float = 0.0,
          mirror: bool = False) -> torch.Tensor:
    """(N, 1, 32, 32) float views of grey thumbnails: zoomed in about the centre, rotated,
    mirrored; borders reflect. Without rotation a view is separable, two small matrix
    products, far cheaper on a CPU than resampling each pixel."""
    if (zoom, degrees, mirror) == (1.0, 0.0, False):
        return grey
    if degrees == 0.0:
        side, device = grey.shape[-1], str(grey.device)
        return _separable(grey, _axis_map(zoom, False, side, device),
                          _axis_map(zoom, mirror, side, device))
    return _resampled(grey.flip(-1) if mirror else grey, zoom, degrees)


def _separable(images: torch.Tensor, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """left @ X @ right^T for every (C, S, S) image X, as two plain matrix products."""
    n, channels, side = images.shape[0], images.shape[1], images.shape[-1]
    rows = (images.reshape(-1, side) @ right.t()).view(-1, side, side).transpose(1, 2)
    return (rows.reshape(-1, side) @ left.t()).view(n, channels, side, side).transpose(2, 3)


def _resampled(grey: torch.Tensor, zoom: float, degrees: float) -> torch.Tensor:
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
    columns = basis if zoom == 1.0 else _resampled(basis, zoom, 0.0)
    return columns[:, 0, side // 2, :].t().contiguous().to(device)


@lru_cache(maxsize=4)
def _dct_matrix(device: str) -> torch.Tensor:
    """(8, 32) rows of the orthonormal DCT-II basis: the low frequencies of a 32-point DCT."""
    k = torch.arange(DCT_SIDE, dtype=torch.float32)[:, None]
    x = torch.arange(GREY, dtype=torch.float32)[None, :]
    basis = torch.cos(math.pi * (2 * x + 1) * k / (2 * GREY)) * math.sqrt(2 / GREY)
    basis[0] /= math.sqrt(2)
    return basis.to(device)


def _low_dct(view: torch.Tensor) -> torch.Tensor:
    """(N, 1, 32, 32) -> (N, 64) low-frequency DCT coefficients (DC first)."""
    basis = _dct_matrix(str(view.device))
    return (basis @ view[:, 0] @ basis.t()).flatten(1)


def _descriptor(coefficients: torch.Tensor) -> torch.Tensor:
    """Unit-length DCT descriptor without the DC term: blind to brightness and contrast."""
    ac = coefficients[:, 1:]
    return ac / ac.norm(dim=1, keepdim=True).clamp_min(1e-6)


@lru_cache(maxsize=8)
def _blur_matrix(device: str, sigma: float = BLUR, side: int = GREY) -> torch.Tensor:
    """(side, side) Gaussian blur of one axis with reflected borders: blurred = B X B^T."""
    radius = int(math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-x * x / (2 * sigma * sigma))
    padded = F.pad(torch.eye(side)[:, None, :], (radius, radius), mode="reflect")
    rows = F.conv1d(padded, (kernel / kernel.sum()).view(1, 1, -1))[:, 0]  # row i: B e_i
    return rows.t().contiguous().to(device)


def _standardised(view: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Blurred, zero-mean, unit-std views and their grey std before standardising."""
    blur = _blur_matrix(str(view.device))
    blurred = _separable(view, blur, blur)
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
        view = _view(part[:, None], zoom, mirror=mirror)
        out[start : start + len(part)] = _descriptor(_low_dct(view)).cpu().numpy()
    return out


# --- candidates by nearest neighbours ------------------------------------------------------


def neighbour_pairs(grey: np.ndarray, k: int, min_cosine: float, mirrors: bool = False,
                    device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Pairs (a < b) where b is among a's k nearest neighbours by DCT descriptor (or the
    reverse), with cosine >= min_cosine, in three searches: a's own view and its zoomed-in
    views among the rows' own views (trims and pads), a's centre among the rows' centres
    (copies whose borders a warp changed), and a's clipped view among the rows' clipped
    views (overlays); mirror views too with `mirrors`. Exact search up to EXACT_SEARCH_ROWS
    rows, inverted lists above."""
    n = len(grey)
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    plain, centre, clipped = (1.0, False, False), (CENTRE, False, False), (1.0, False, True)
    searches = [(plain, [plain, *((z, False, False) for z in ZOOMS)]), (centre, [centre]),
                (clipped, [clipped])]
    if mirrors:
        searches = [(indexed, [*views, (indexed[0], True, indexed[2])])
                    for indexed, views in searches]
    found_a, found_b = [], []
    for indexed, views in searches:
        base = descriptors(grey, *indexed, device=device)
        search = ExactSearch(base) if n <= EXACT_SEARCH_ROWS else InvertedLists(base)
        for view in views:
            query = base if view == indexed else descriptors(grey, *view, device=device)
            rows, found = search.nearest(query, k, min_cosine)
            found_a.append(rows)
            found_b.append(found)
        del base, search, query  # one search's index in memory at a time
    return unique_pairs(np.concatenate(found_a), np.concatenate(found_b), n)


EXACT_SEARCH_ROWS = 50_000
LIST_ROWS = 1000  # rows per inverted list, on average
LISTS_VISITED = 16  # lists searched per query: its nearest centroids
QUERY_CHUNK = 1 << 18  # queries searched together (bounds the memory of their best rows)
QUERY_BLOCK = 512  # queries multiplied with a list at once: their similarities stay in cache


class ExactSearch:
    """Every query against every row (faiss, inner product of unit vectors)."""

    def __init__(self, base: np.ndarray):
        import faiss

        self.index = faiss.IndexFlatIP(base.shape[1])
        self.index.add(base)

    def nearest(self, query: np.ndarray, k: int, min_similarity: float
                ) -> tuple[np.ndarray, np.ndarray]:
        """(query row, base row) pairs: of each query's k + 1 most similar rows, those at
        least min_similarity, other than the query's own row."""
        k = min(k + 1, self.index.ntotal)
        similarity, found = self.index.search(query, k)
        rows = np.repeat(np.arange(len(query)), k)
        found, similarity = found.ravel(), similarity.ravel()
        keep = (found >= 0) & (similarity >= min_similarity) & (found != rows)
        return rows[keep], found[keep]


class InvertedLists:
    """Approximate search over rows clustered into lists (spherical k-means): a query sees
    the rows of its LISTS_VISITED nearest lists. Searched list by list rather than query by
    query: each list meets all the queries visiting it in matrix products of QUERY_BLOCK
    queries, so its rows are read from memory once per list, not once per query (the cost
    at millions of rows)."""

    def __init__(self, base: np.ndarray, seed: int = 0):
        import faiss

        lists = max(1, len(base) // LIST_ROWS)
        sample = base[np.random.default_rng(seed).choice(len(base), min(len(base), lists * 64),
                                                         replace=False)]
        kmeans = faiss.Kmeans(base.shape[1], lists, niter=20, spherical=True, seed=seed)
        kmeans.train(sample)
        self.centroids = faiss.IndexFlatIP(base.shape[1])
        self.centroids.add(kmeans.centroids)
        owner = self.centroids.search(base, 1)[1][:, 0]
        order = np.argsort(owner, kind="stable")
        self.order = torch.from_numpy(order)
        self.bounds = np.searchsorted(owner[order], np.arange(lists + 1))
        self.columns = torch.from_numpy(np.ascontiguousarray(base[order].T))

    def nearest(self, query: np.ndarray, k: int, min_similarity: float
                ) -> tuple[np.ndarray, np.ndarray]:
        """As ExactSearch.nearest, among the rows of each query's nearest lists."""
        parts = [self._nearest_chunk(query[start : start + QUERY_CHUNK], start, k,
                                     min_similarity)
                 for start in range(0, len(query), QUERY_CHUNK)]
        return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))

    def _nearest_chunk(self, query: np.ndarray, offset: int, k: int, min_similarity: float
                       ) -> tuple[np.ndarray, np.ndarray]:
        keep = k + 1  # the query's own row may be among them
        visited = torch.from_numpy(self.centroids.search(query, LISTS_VISITED)[1].ravel())
        by_list = torch.argsort(visited, stable=True)  # (query, visit) slots, list by list
        query_bounds = torch.searchsorted(visited[by_list], torch.arange(len(self.bounds)))
        queries = torch.from_numpy(query)
        # each slot's best rows in its list; rows too far from the query never enter
        best = torch.full((len(query) * LISTS_VISITED, keep), -2.0)
        best_row = torch.zeros((len(query) * LISTS_VISITED, keep), dtype=torch.int32)
        for lst in range(len(self.bounds) - 1):
            low, high = int(self.bounds[lst]), int(self.bounds[lst + 1])
            if low == high:
                continue
            slots = by_list[query_bounds[lst] : query_bounds[lst + 1]]
            members = self.columns[:, low:high]
            for start in range(0, len(slots), QUERY_BLOCK):
                block = slots[start : start + QUERY_BLOCK]
                similarity = queries[block // LISTS_VISITED] @ members
                near = similarity.amax(1) >= min_similarity
                if not near.any():
                    continue
                block, similarity = block[near], similarity[near]
                top, column = similarity.topk(min(keep, high - low), dim=1, sorted=False)
                best[block, : top.shape[1]] = top
                best_row[block, : top.shape[1]] = self.order[low + column].int()
        best = best.view(len(query), -1)
        top, at = best.topk(min(keep, best.shape[1]), dim=1)
        found = best_row.view(len(query), -1).gather(1, at).long()
        rows = torch.arange(offset, offset + len(query))[:, None].expand_as(found)
        hit = (top >= min_similarity) & (found != rows)
        return rows[hit].numpy(), found[hit].numpy()


def unique_pairs(a: np.ndarray, b: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct unordered pairs (low < high) of the pairs (a, b), self-pairs dropped."""
    low, high = np.minimum(a, b), np.maximum(a, b)
    keep = low != high
    unique = np.unique(low[keep].astype(np.int64) * n + high[keep])
    return unique // n, unique % n


# --- verification --------------------------------------------------------------------------

FEATURES = ("correlation", "dct_cosine", "dct_sign_agreement", "colour_difference",
            "contrast_ratio", "texture_low", "texture_high", "aligned", "detail_correlation",
            "chroma_cosine", "chroma_low", "unoccluded_correlation")


View = tuple[float, float, bool]  # (zoom, degrees, mirror)
PLAIN: View = (1.0, 0.0, False)


def _views_of_pair(mirrors: bool) -> list[tuple[View, View]]:
    """(view of a, view of b) alignments tried for every pair: (zoom, degrees, mirror)."""
    views = [(PLAIN, PLAIN)]
    views += [((z, 0.0, False), PLAIN) for z in ZOOMS]
    views += [(PLAIN, (z, 0.0, False)) for z in ZOOMS]
    views += [(PLAIN, (1.0, d, False)) for d in ROTATIONS]
    views += [((CENTRE, 0.0, False), (CENTRE, 0.0, False))]
    if mirrors:
        views += [(PLAIN, (1.0, 0.0, True))]
    return views


@lru_cache(maxsize=4)
def _window_matrix(side: int, device: str) -> torch.Tensor:
    """(shifts per axis, side) rows of ones over the central window moved by each shift:
    R X R^T holds every shifted window's sum."""
    rows = torch.zeros(2 * SHIFT + 1, side)
    for i, d in enumerate(range(-SHIFT, SHIFT + 1)):
        rows[i, MARGIN + d : side - MARGIN + d] = 1
    return rows.to(device)


def _window_norms(b: torch.Tensor) -> torch.Tensor:
    """(N, shifts) centred squared norms of each standardised view's central window moved
    by every shift (row-major over (dy, dx)), as box sums: two small matrix products."""
    side = b.shape[-1]
    window = _window_matrix(side, str(b.device))
    sums = window @ b[:, 0] @ window.t()
    squares = window @ b[:, 0].square() @ window.t()
    return (squares - sums.square() / (side - 2 * MARGIN) ** 2).clamp_min(0).flatten(1)


def _shift_correlation(a: torch.Tensor, b: torch.Tensor, norms: torch.Tensor | None = None
                       ) -> torch.Tensor:
    """Best correlation of standardised views over shifts of b by up to SHIFT pixels, on the
    central region (`norms`: b's `_window_norms`, when already computed)."""
    return _shift_correlations(a, b, norms).amax(dim=1)


def _shift_correlations(a: torch.Tensor, b: torch.Tensor, norms: torch.Tensor | None = None
                        ) -> torch.Tensor:
    """(N, shifts) correlations of `_shift_correlation`, row-major over (dy, dx)."""
    side = b.shape[-1]
    inner = a[:, 0, MARGIN:-MARGIN, MARGIN:-MARGIN]
    inner = inner - inner.mean(dim=(1, 2), keepdim=True)
    inner_norm = inner.square().sum(dim=(1, 2))
    norms = _window_norms(b) if norms is None else norms
    # every shift's dot product at once: each pair's inner region is the kernel of its own
    # group, slid over b (inner has zero mean, so b's windows need no centring)
    reach = b[None, :, 0, MARGIN - SHIFT : side - MARGIN + SHIFT,
              MARGIN - SHIFT : side - MARGIN + SHIFT]
    dots = F.conv2d(reach, inner[:, None], groups=len(a))[0].flatten(1)
    return dots / (inner_norm[:, None] * norms).sqrt().clamp_min(1e-6)


@lru_cache(maxsize=4)
def _smooth_basis(side: int, device: str) -> torch.Tensor:
    """(side*side, 6) orthonormal basis of the quadratic surfaces over a side x side image."""
    y, x = torch.meshgrid(torch.linspace(-1, 1, side, dtype=torch.float64),
                          torch.linspace(-1, 1, side, dtype=torch.float64), indexing="ij")
    surfaces = torch.stack([torch.ones_like(x), x, y, x * x, y * y, x * y]).flatten(1).t()
    return torch.linalg.qr(surfaces).Q.to(device)


def _texture(grey: torch.Tensor) -> torch.Tensor:
    """Grey-level std left after fitting a smooth quadratic surface: how much an image has
    beyond a gradient (skies, walls and gradients have little). The fit is a projection
    onto an orthonormal basis, so the residual's energy is the total less the fit's (in
    float64: the difference of two large sums)."""
    pixels = grey.flatten(1).double()
    fitted = pixels @ _smooth_basis(grey.shape[-1], str(grey.device))
    energy = pixels.square().sum(dim=1) - fitted.square().sum(dim=1)
    return (energy.clamp_min(0) / (pixels.shape[1] - 1)).sqrt().float()


def textures(grey: np.ndarray, device: str = "cpu") -> np.ndarray:
    """(N,) float32 `_texture` of (N, 32, 32) uint8 grey thumbnails."""
    out = np.empty(len(grey), np.float32)
    for start in range(0, len(grey), PAIR_CHUNK * 16):
        part = torch.from_numpy(grey[start : start + PAIR_CHUNK * 16]).to(device).float()
        out[start : start + len(part)] = _texture(part).cpu().numpy()
    return out


def _level_free(colour: torch.Tensor) -> torch.Tensor:
    """Colour thumbnails divided by their mean level: brightness edits do not count."""
    return colour * (128.0 / (colour.mean(dim=(1, 2, 3), keepdim=True) + 8.0))


def _detail_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Best shifted correlation of the fine detail alone (each view less its DETAIL_BLUR
    blur): images alike in coarse layout, tile by tile, seldom agree in detail."""
    blur = _blur_matrix(str(a.device), DETAIL_BLUR)
    detail_a, detail_b = (_standardised(x - _separable(x, blur, blur))[0] for x in (a, b))
    return _shift_correlation(detail_a, detail_b)


def _unoccluded_correlation(a: torch.Tensor, b: torch.Tensor, shift: torch.Tensor
                            ) -> torch.Tensor:
    """Correlation of standardised views on their central region, at b's `shift` (the index
    of `_shift_correlations` that correlates best), less the OVERLAY_SHARE of pixels where
    the two differ most: an emoji or a caption drawn on a copy covers a small part of it,
    which the plain correlation counts against the whole."""
    inner = b.shape[-1] - 2 * MARGIN
    dy, dx = shift // (2 * SHIFT + 1) - SHIFT, shift % (2 * SHIFT + 1) - SHIFT
    span = torch.arange(MARGIN, MARGIN + inner, device=b.device)
    rows, columns = (span[None, :] + d[:, None] for d in (dy, dx))
    moved = b[torch.arange(len(b), device=b.device)[:, None, None], 0, rows[:, :, None],
              columns[:, None, :]]
    fixed, moved = (_zscore(x.flatten(1)) for x in (a[:, 0, MARGIN:-MARGIN, MARGIN:-MARGIN],
                                                   moved))
    difference = (fixed - moved).abs()
    cut = difference.topk(max(1, int(OVERLAY_SHARE * inner * inner)), dim=1).values[:, -1:]
    keep = (difference <= cut).float()
    return (_zscore(fixed, keep) * _zscore(moved, keep) * keep).sum(1) / keep.sum(1)


def _zscore(x: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """x less its mean over the last axis, over its std there (weighted by `weight`)."""
    weight = torch.ones_like(x) if weight is None else weight
    total = weight.sum(-1, keepdim=True)
    centred = x - (x * weight).sum(-1, keepdim=True) / total
    return centred / ((centred.square() * weight).sum(-1, keepdim=True) / total).sqrt() \
        .clamp_min(1e-6)


def _chroma(ca: torch.Tensor, cb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine of two level-free colour thumbnails' chroma (each pixel less its grey), and the
    lesser chroma's RMS (log1p): the cosine says nothing when either image is nearly grey,
    and a saturation edit scales chroma without turning it."""
    ca, cb = ((x - x.mean(dim=1, keepdim=True)).flatten(1) for x in (ca, cb))
    na, nb = ca.norm(dim=1), cb.norm(dim=1)
    cosine = (ca * cb).sum(dim=1) / (na * nb).clamp_min(1e-3)
    rms = torch.minimum(na, nb) / math.sqrt(ca.shape[1])
    return cosine, torch.log1p(rms)


def pair_features(grey: np.ndarray, colour: np.ndarray, a: np.ndarray, b: np.ndarray,
                  mirrors: bool = False, device: str = "cpu") -> np.ndarray:
    """(P, len(FEATURES)) float32 features of the pairs of rows (a[i], b[i]) of (N, 32, 32)
    grey and (N, 8, 8, 3) colour thumbnails, at the view alignment with the highest
    correlation. Cheapest when pairs sharing a row are next to each other: each view of a
    row is computed once per chunk of pairs."""
    return pair_looks(grey, colour, a, b, mirrors, device)[0]


def pair_looks(grey: np.ndarray, colour: np.ndarray, a: np.ndarray, b: np.ndarray,
               mirrors: bool = False, device: str = "cpu") -> np.ndarray:
    """(2, P, len(FEATURES)): `pair_features`, then the same pairs' chroma look (the colour
    difference after `_chroma_matched`), both from one pass over the views."""
    out = np.empty((2, len(a), len(FEATURES)), np.float32)
    for start in range(0, len(a), PAIR_CHUNK):
        part = slice(start, start + PAIR_CHUNK)
        out[:, part] = _chunk_features(grey, colour, a[part], b[part],
                                       _views_of_pair(mirrors), device).cpu().numpy()
    return out


def unoverlaid_pair_features(grey: np.ndarray, colour: np.ndarray, a: np.ndarray,
                             b: np.ndarray, device: str = "cpu") -> np.ndarray:
    """`pair_features` of the pairs as they lie (no other view), after the OVERLAY_SHAPES
    window where the two images differ most, such as an emoji or a caption drawn on one, is
    filled in both from around it."""
    out = np.empty((len(a), len(FEATURES)), np.float32)
    for start in range(0, len(a), PAIR_CHUNK):
        part = slice(start, start + PAIR_CHUNK)
        grey_pairs, colour_pairs = _without_overlay(grey, colour, a[part], b[part], device)
        k = len(grey_pairs) // 2
        out[part] = _chunk_features(grey_pairs, colour_pairs, np.arange(k), k + np.arange(k),
                                    [(PLAIN, PLAIN)], device)[0].cpu().numpy()
    return out


def _without_overlay(grey: np.ndarray, colour: np.ndarray, a: np.ndarray, b: np.ndarray,
                     device: str) -> tuple[np.ndarray, np.ndarray]:
    """The thumbnails of a's rows then b's, each pair's overlay filled by a normalised
    convolution (the blur of the pixels kept over the blur of the mask)."""
    ga, gb = (_grey_tensor(grey, x, device) for x in (a, b))
    keep = _outside_overlay(_standardised(ga)[0] - _standardised(gb)[0])
    keep_colour = (F.avg_pool2d(keep, GREY // COLOUR) == 1).float()
    grey_out = torch.cat([_filled(x, keep, FILL_BLUR) for x in (ga, gb)])[:, 0]
    colour_out = torch.cat([_filled(torch.from_numpy(colour[x]).to(device).float()
                                    .permute(0, 3, 1, 2), keep_colour, FILL_BLUR * COLOUR / GREY)
                            for x in (a, b)]).permute(0, 2, 3, 1)
    return tuple(x.round().clamp(0, 255).to(torch.uint8).cpu().numpy()
                 for x in (grey_out, colour_out))


def _outside_overlay(difference: torch.Tensor) -> torch.Tensor:
    """1 outside, 0 inside the window, of any of OVERLAY_SHAPES, holding the most of each
    difference's energy (N, 1, S, S): one compact overlay, not the scattered places where
    two scenes differ."""
    energy = difference.square()
    most = torch.full((len(energy),), -1.0, device=energy.device)
    box = torch.zeros((len(energy), 4), dtype=torch.long, device=energy.device)
    for height, width in OVERLAY_SHAPES:
        window = F.avg_pool2d(energy, (height, width), stride=1) * (height * width)
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
    blur = _blur_matrix(str(images.device), sigma, images.shape[-1])
    kept_mean = (images * keep).sum(dim=(2, 3), keepdim=True) / \
        keep.sum(dim=(2, 3), keepdim=True).clamp_min(1)
    smooth = (_separable(images * keep, blur, blur) + FILL_FLOOR * kept_mean) / \
        (_separable(keep, blur, blur) + FILL_FLOOR)
    return keep * images + (1 - keep) * smooth


def _chunk_features(grey: np.ndarray, colour: np.ndarray, a: np.ndarray, b: np.ndarray,
                    pairs: list[tuple[View, View]], device: str) -> torch.Tensor:
    # each view of each distinct row once, then gathered for the pairs that use it
    (rows_a, index_a), (rows_b, index_b) = (np.unique(x, return_inverse=True) for x in (a, b))
    seen_a = _seen_at(_grey_tensor(grey, rows_a, device), {va for va, _ in pairs})
    seen_b = _seen_at(_grey_tensor(grey, rows_b, device), {vb for _, vb in pairs},
                      shifted=True)
    ia, ib = torch.from_numpy(index_a).to(device), torch.from_numpy(index_b).to(device)
    per_view = []
    for view_a, view_b in pairs:
        (sa, std_a, dct_a, sign_a), (sb, std_b, dct_b, sign_b, norms) = (
            [x[ia] for x in seen_a[view_a]], [x[ib] for x in seen_b[view_b]])
        correlations = _shift_correlations(sa, sb, norms)
        per_view.append(torch.stack([
            correlations.amax(dim=1),
            (_descriptor(dct_a) * _descriptor(dct_b)).sum(dim=1),
            (sign_a == sign_b).float().mean(dim=1),
            ((std_a + 1) / (std_b + 1)).log().abs(),
            correlations.argmax(dim=1).float(),  # the best shift, for the unoccluded feature
        ], dim=1))
    views = torch.stack(per_view)  # (views, P, 5)
    best = views[:, :, 0].argmax(dim=0)
    chosen = views[best, torch.arange(len(a), device=device)]
    # colour and texture are compared at the chosen alignment, so that a pad, a trimmed
    # border or a mirror is not counted as a difference of the images themselves
    ga, gb = _grey_tensor(grey, a, device), _grey_tensor(grey, b, device)
    ca, cb = (torch.from_numpy(colour[x]).to(device).float().permute(0, 3, 1, 2) for x in (a, b))
    (ga, gb), (ca, cb) = (_at_views(x, y, best, pairs) for x, y in ((ga, gb), (ca, cb)))
    ca, cb = _level_free(ca), _level_free(cb)
    texture_a, texture_b = _texture(ga[:, 0]), _texture(gb[:, 0])
    plain = torch.stack([
        chosen[:, 0], chosen[:, 1], chosen[:, 2], _colour_difference(ca, cb), chosen[:, 3],
        torch.log1p(torch.minimum(texture_a, texture_b)),
        torch.log1p(torch.maximum(texture_a, texture_b)),
        (best > 0).float(), _detail_correlation(ga, gb), *_chroma(ca, cb),
        _unoccluded_correlation(*(_standardised(x)[0] for x in (ga, gb)), chosen[:, 4].long()),
    ], dim=1)
    # the chroma look differs in the colour difference alone: the chroma features still say
    # how far apart the two hues are and whether either image has any colour. It is for a
    # copy made grey, paler or more vivid: only where both images hold a scene (a flat
    # fill's one content is its colour) and the hues agree (or one image is grey)
    chroma_look = plain.clone()
    column = FEATURES.index("colour_difference")
    cosine, weaker = (plain[:, FEATURES.index(name)] for name in ("chroma_cosine", "chroma_low"))
    looked = (torch.minimum(texture_a, texture_b) >= CHROMA_MIN_TEXTURE) & \
        ((cosine >= CHROMA_MIN_COSINE) | (weaker < math.log1p(CHROMA_GREY)))
    chroma_look[:, column] = torch.where(looked, _colour_difference(*_chroma_matched(ca, cb)),
                                         plain[:, column])
    return torch.stack([plain, chroma_look])


def _colour_difference(ca: torch.Tensor, cb: torch.Tensor) -> torch.Tensor:
    return (ca - cb).abs().mean(dim=(1, 2, 3))


def _chroma_matched(ca: torch.Tensor, cb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Level-free colour thumbnails (N, 3, S, S) with the stronger chroma of each pair (each
    pixel less its luma) scaled by the factor in [0, 1] that brings it nearest the weaker: a
    copy made grey, paler or more vivid then differs in colour only where its hue moved.
    Luma, not the channels' mean, is what a saturation edit keeps (PIL's and OpenCV's)."""
    luma = torch.tensor(LUMA, device=ca.device)[None, :, None, None]
    grey_a, grey_b = ((x * luma).sum(dim=1, keepdim=True) for x in (ca, cb))
    chroma_a, chroma_b = ca - grey_a, cb - grey_b
    a_weaker = (chroma_a.square().sum(dim=(1, 2, 3)) <=
                chroma_b.square().sum(dim=(1, 2, 3)))[:, None, None, None]
    weaker = torch.where(a_weaker, chroma_a, chroma_b)
    stronger = torch.where(a_weaker, chroma_b, chroma_a)
    factor = ((weaker * stronger).sum(dim=(1, 2, 3)) /
              stronger.square().sum(dim=(1, 2, 3)).clamp_min(1e-6)).clamp(0, 1)
    scaled = factor[:, None, None, None] * stronger
    return torch.where(a_weaker, ca, grey_a + scaled), torch.where(a_weaker, grey_b + scaled, cb)


def _grey_tensor(grey: np.ndarray, rows: np.ndarray, device: str) -> torch.Tensor:
    return torch.from_numpy(grey[rows]).to(device).float()[:, None]


def _seen_at(images: torch.Tensor, views: set[View], shifted: bool = False
             ) -> dict[View, tuple[torch.Tensor, ...]]:
    """Each view of the images: standardised, its grey std, its low DCT, the DCT's signs
    about their median, and when the view is the `shifted` side, its `_window_norms`."""
    seen = {}
    for view in views:
        seen_view = _view(images, *view)
        standardised, std = _standardised(seen_view)
        dct = _low_dct(seen_view)
        seen[view] = (standardised, std, dct,
                      dct[:, 1:] > dct[:, 1:].median(dim=1, keepdim=True).values)
        if shifted:
            seen[view] += (_window_norms(standardised),)
    return seen


def _at_views(a: torch.Tensor, b: torch.Tensor, best: torch.Tensor,
              pairs: list[tuple[View, View]]
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Both images of every pair (N, C, H, W) seen at the pair's chosen alignment."""
    out_a, out_b = a.clone(), b.clone()
    for index, (view_a, view_b) in enumerate(pairs):
        pick = best == index
        if index and pick.any():
            out_a[pick], out_b[pick] = _view(a[pick], *view_a), _view(b[pick], *view_b)
    return out_a, out_b


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


def near_threshold(scores: np.ndarray, threshold: float, band: float) -> np.ndarray:
    """Indices of the scores within `band` below the threshold: the pairs a second look is
    for (dedup's verifier and the fit of its margin pick them alike)."""
    return np.flatnonzero((scores < threshold) & (scores >= threshold - band))


def aligned_pair_features(grey: np.ndarray, colour: np.ndarray, a: np.ndarray, b: np.ndarray,
                          mirrors: bool = False, device: str = "cpu"
                          ) -> tuple[np.ndarray, np.ndarray]:
    """`pair_features` of each pair after b is warped onto a by `fitted_alignment`, and
    whether a small alignment was found (where not, the row of features is NaN)."""
    # OpenCV lets go of the GIL while it fits: one thread per core
    with ThreadPoolExecutor(max(1, torch.get_num_threads())) as pool:
        warps = list(pool.map(fitted_alignment, grey[a], grey[b]))
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


# --- the decision --------------------------------------------------------------------------


def expand(features: np.ndarray) -> np.ndarray:
    """Features and their pairwise products (the logistic model's inputs): texture changes
    how much correlation and colour mean, which a plain linear model cannot say."""
    columns = [features]
    for i in range(features.shape[1]):
        columns.append(features[:, i : i + 1] * features[:, i:])
    return np.concatenate(columns, axis=1).astype(np.float64)


class Logistic:
    """A fitted logistic model (`fit`'s parameters): log-odds of its inputs, expanded by
    their pairwise products when it was fitted so."""

    def __init__(self, params: dict[str, Any]):
        self.params = params
        self.mean = np.asarray(params["mean"], np.float64)
        self.scale = np.asarray(params["scale"], np.float64)
        self.weights = np.asarray(params["weights"], np.float64)
        self.bias = float(params["bias"])
        self.quadratic = bool(params.get("quadratic", True))

    def log_odds(self, features: np.ndarray) -> np.ndarray:
        inputs = expand(features) if self.quadratic else features
        return (inputs - self.mean) / self.scale @ self.weights + self.bias


class VerifyModel(Logistic):
    """The fixed logistic model over `expand(pair_features)`, with its calibrated threshold
    and the margins of its second looks."""

    def __init__(self, params: dict[str, Any]):
        if tuple(params["features"]) != FEATURES:
            raise ValueError("verify model was fitted on other features")
        super().__init__(params)
        self.threshold = float(params["threshold"])
        self.align_band = float(params.get("align_band", 0.0))  # 0: no second look
        self.align_margin = float(params.get("align_margin", 0.0))
        self.overlay_band = float(params.get("overlay_band", 0.0))  # 0: no overlay look
        self.overlay_margin = float(params.get("overlay_margin", 0.0))
        self.chroma_margin = float(params.get("chroma_margin", math.inf))  # inf: no chroma look

    @classmethod
    def load(cls, path: str | Path = MODEL_FILE) -> VerifyModel:
        return cls(json.loads(Path(path).read_text()))


def fit(features: np.ndarray, same: np.ndarray, l2: float = 1e-3,
        names: tuple[str, ...] = FEATURES, quadratic: bool = True) -> dict[str, Any]:
    """Fit the logistic model to pair features (columns `names`; with their pairwise products
    when `quadratic`) and truth (no threshold yet)."""
    x = expand(features) if quadratic else features.astype(np.float64)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    inputs = torch.tensor((x - mean) / scale)
    target = torch.tensor(same, dtype=torch.float64)
    weights = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([weights, bias], max_iter=500)

    def loss() -> torch.Tensor:
        optimiser.zero_grad()
        value = F.binary_cross_entropy_with_logits(inputs @ weights + bias, target) + \
            l2 * weights.square().sum()
        value.backward()
        return value

    optimiser.step(loss)
    return {"features": list(names), "quadratic": quadratic, "mean": mean.tolist(),
            "scale": scale.tolist(),
            "weights": weights.detach().numpy().tolist(), "bias": float(bias.item())}
