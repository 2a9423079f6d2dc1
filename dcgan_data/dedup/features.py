"""The features of a pair of rows that verification scores: the two thumbnails compared
over a few view alignments and small shifts, at the best one (see `verify`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from dcgan_data.core.images import LUMA
from dcgan_data.dedup.views import (
    CENTRE,
    PAIR_CHUNK,
    ROTATIONS,
    ZOOMS,
    blur_matrix,
    box_rows,
    low_dct,
    separable,
    standardised,
    unit_descriptor,
    view,
)

SHIFT = 1  # alignment shifts, in grey-thumbnail pixels, on each axis
MARGIN = 2  # border left out of the correlation (room for the shifts)
DETAIL_BLUR = 2.0  # sigma of the coarse layout taken away before comparing fine detail
OVERLAY_SHARE = 0.1  # share of the compared pixels an overlay (a sticker, a caption) may cover
CHROMA_MIN_TEXTURE = 0.5  # grey-level texture both images need for the chroma look...
CHROMA_MIN_COSINE = 0.9  # ...and chroma this alike in direction, unless one is grey:
CHROMA_GREY = 1.0  # RMS chroma, in levels, below which an image counts as grey
VIEW_TIE = 1e-5  # correlations this close count as equal when choosing a pair's view
LOCAL_HOPS = 2  # how far `local_order` looks for rows to put together
FEATURES = ("correlation", "dct_cosine", "dct_sign_agreement", "colour_difference",
            "contrast_ratio", "texture_low", "texture_high", "aligned", "detail_correlation",
            "chroma_cosine", "chroma_low", "unoccluded_correlation")
View = tuple[float, float, bool]  # (zoom, degrees, mirror)
PLAIN: View = (1.0, 0.0, False)


def views_of_pair(mirrors: bool) -> list[tuple[View, View]]:
    """(view of a, view of b) alignments tried for every pair: (zoom, degrees, mirror)."""
    views = [(PLAIN, PLAIN)]
    views += [((z, 0.0, False), PLAIN) for z in ZOOMS]
    views += [(PLAIN, (z, 0.0, False)) for z in ZOOMS]
    views += [(PLAIN, (1.0, d, False)) for d in ROTATIONS]
    views += [((CENTRE, 0.0, False), (CENTRE, 0.0, False))]
    if mirrors:
        views += [(PLAIN, (1.0, 0.0, True))]
    return views


def _window_norms(b: torch.Tensor, margin: int = MARGIN, shift: int = SHIFT) -> torch.Tensor:
    """(N, shifts) centred squared norms of each standardised view's central window moved
    by every shift (row-major over (dy, dx)), as box sums: two small matrix products."""
    side = b.shape[-1]
    window = box_rows(side, side - 2 * margin, tuple(range(margin - shift, margin + shift + 1)),
                      str(b.device))
    sums = window @ b[:, 0] @ window.t()
    squares = window @ b[:, 0].square() @ window.t()
    return (squares - sums.square() / (side - 2 * margin) ** 2).clamp_min(0).flatten(1)


def shift_correlation(a: torch.Tensor, b: torch.Tensor, pair_a: torch.Tensor | None = None,
                      pair_b: torch.Tensor | None = None, margin: int = MARGIN,
                      shift: int = SHIFT) -> torch.Tensor:
    """Best correlation of standardised views (N, 1, S, S) over shifts of b by up to `shift`
    pixels, on the region `margin` pixels in from the edges: of a[i] and b[i], or of every
    pair (a[pair_a[j]], b[pair_b[j]]) when the views are distinct images that pairs share
    (each image's part is found once)."""
    inner, inner_norm = _centred_inner(a, margin)
    reach, norms = _reach(b, margin, shift), _window_norms(b, margin, shift)
    if pair_a is not None:
        inner, inner_norm = (x.index_select(0, pair_a) for x in (inner, inner_norm))
        reach, norms = (x.index_select(0, pair_b) for x in (reach, norms))
    return _correlations(inner, inner_norm, reach, norms).amax(dim=1)


def _centred_inner(a: torch.Tensor, margin: int = MARGIN) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, S-2M, S-2M) central regions of standardised views less their means, and their
    squared norms: the side that is slid over the other."""
    inner = a[:, 0, margin:-margin, margin:-margin]
    inner = inner - inner.mean(dim=(1, 2), keepdim=True)
    return inner, inner.square().sum(dim=(1, 2))


def _reach(b: torch.Tensor, margin: int = MARGIN, shift: int = SHIFT) -> torch.Tensor:
    """(N, S-2M+2*SHIFT, ...) the part of standardised views every shifted window lies in."""
    side = b.shape[-1]
    return b[:, 0, margin - shift : side - margin + shift,
             margin - shift : side - margin + shift].contiguous()


def _correlations(inner: torch.Tensor, inner_norm: torch.Tensor, reach: torch.Tensor,
                  norms: torch.Tensor) -> torch.Tensor:
    """(N, shifts) correlations of each centred inner region with every shifted window of
    the other view's reach (`norms`: its `_window_norms`), row-major over (dy, dx)."""
    # every shift's dot product at once: each pair's inner region is the kernel of its own
    # group, slid over b (inner has zero mean, so b's windows need no centring)
    dots = F.conv2d(reach[None], inner[:, None], groups=len(inner))[0].flatten(1)
    return dots / (inner_norm[:, None] * norms).sqrt().clamp_min(1e-6)


@lru_cache(maxsize=4)
def _smooth_basis(side: int, device: str) -> torch.Tensor:
    """(side*side, 6) orthonormal basis of the quadratic surfaces over a side x side image."""
    y, x = torch.meshgrid(torch.linspace(-1, 1, side, dtype=torch.float64),
                          torch.linspace(-1, 1, side, dtype=torch.float64), indexing="ij")
    surfaces = torch.stack([torch.ones_like(x), x, y, x * x, y * y, x * y]).flatten(1).t()
    return torch.linalg.qr(surfaces).Q.float().to(device)


def _texture(grey: torch.Tensor) -> torch.Tensor:
    """Grey-level std left after fitting a smooth quadratic surface: how much an image has
    beyond a gradient (skies, walls and gradients have little). The fit is a projection
    onto an orthonormal basis; the residual is taken before squaring, so that a little
    texture on a strong gradient is not the difference of two large sums."""
    pixels = grey.flatten(1)
    basis = _smooth_basis(grey.shape[-1], str(grey.device))
    residual = pixels - (pixels @ basis) @ basis.t()
    return (residual.square().sum(dim=1) / (pixels.shape[1] - 1)).sqrt()


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


def _detail_correlation(a: _Chosen, b: _Chosen) -> torch.Tensor:
    """Best shifted correlation of the fine detail alone (each view less its DETAIL_BLUR
    blur) of every pair: images alike in coarse layout, tile by tile, seldom agree in
    detail."""
    blur = blur_matrix(str(a.grey.device), DETAIL_BLUR)
    detail_a, detail_b = (standardised(x.grey - separable(x.grey, blur, blur))[0]
                          for x in (a, b))
    return shift_correlation(detail_a, detail_b, a.inverse, b.inverse)


def _unoccluded_correlation(a: torch.Tensor, b: torch.Tensor, shift: torch.Tensor
                            ) -> torch.Tensor:
    """Correlation of standardised views on their central region, at b's `shift` (the index
    of `_correlations` that correlates best), less the OVERLAY_SHARE of pixels where
    the two differ most: an emoji or a caption drawn on a copy covers a small part of it,
    which the plain correlation counts against the whole."""
    inner = b.shape[-1] - 2 * MARGIN
    moved = b.new_empty((len(b), inner, inner))
    for index in range((2 * SHIFT + 1) ** 2):
        pick = shift == index
        y, x = (MARGIN + d - SHIFT for d in divmod(index, 2 * SHIFT + 1))
        moved[pick] = b[pick, 0, y : y + inner, x : x + inner]
    fixed, moved = (_zscore(x.flatten(1)) for x in (a[:, 0, MARGIN:-MARGIN, MARGIN:-MARGIN],
                                                   moved))
    difference = (fixed - moved).abs()
    cut = difference.topk(max(1, int(OVERLAY_SHARE * inner * inner)), dim=1).values[:, -1:]
    keep = (difference <= cut).float()
    return (_zscore(fixed, keep) * _zscore(moved, keep) * keep).sum(1) / keep.sum(1)


def _zscore(x: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """x less its mean over the last axis, over its std there (weighted by `weight`)."""
    if weight is None:
        centred = x - x.mean(-1, keepdim=True)
        return centred / centred.square().mean(-1, keepdim=True).sqrt().clamp_min(1e-6)
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
    correlation. Cheapest when the caller passes the pairs in `local_order`: each view of a
    row is computed once per chunk of pairs."""
    return pair_looks(grey, colour, a, b, mirrors, device)[0]


def local_order(a: np.ndarray, b: np.ndarray, rows: int) -> np.ndarray:
    """An order of the pairs (a[i], b[i]) in which pairs near each other in the pair graph
    lie together, so that each chunk of pairs computes the views of few distinct rows: each
    row is labelled with the least row within LOCAL_HOPS pairs of it, and pairs are sorted by
    the lesser label of their two rows."""
    label = np.arange(rows)
    for _ in range(LOCAL_HOPS):
        spread = label.copy()
        np.minimum.at(spread, a, label[b])
        np.minimum.at(spread, b, label[a])
        label = spread
    return np.lexsort((b, a, np.minimum(label[a], label[b])))


def pair_looks(grey: np.ndarray, colour: np.ndarray, a: np.ndarray, b: np.ndarray,
               mirrors: bool = False, device: str = "cpu") -> np.ndarray:
    """(2, P, len(FEATURES)): `pair_features`, then the same pairs' chroma look (the colour
    difference after `chroma_matched`), both from one pass over the views."""
    out = np.empty((2, len(a), len(FEATURES)), np.float32)
    for start in range(0, len(a), PAIR_CHUNK):
        part = slice(start, start + PAIR_CHUNK)
        out[:, part] = chunk_features(grey, colour, a[part], b[part],
                                       views_of_pair(mirrors), device).cpu().numpy()
    return out


def chunk_features(grey: np.ndarray, colour: np.ndarray, a: np.ndarray, b: np.ndarray,
                    pairs: list[tuple[View, View]], device: str) -> torch.Tensor:
    # each view of each distinct row once, then gathered for the pairs that use it
    (rows_a, index_a), (rows_b, index_b) = (np.unique(x, return_inverse=True) for x in (a, b))
    seen_a = _seen_at(grey_tensor(grey, rows_a, device), {va for va, _ in pairs})
    seen_b = _seen_at(grey_tensor(grey, rows_b, device), {vb for _, vb in pairs},
                      shifted=True)
    ia, ib = torch.from_numpy(index_a).to(device), torch.from_numpy(index_b).to(device)
    per_view = []
    for view_a, view_b in pairs:
        sa, sb = seen_a[view_a], seen_b[view_b]
        # index_select, not indexing: the same rows, several times faster on a CPU
        inner, inner_norm, dct_a, sign_a, std_a = (
            x.index_select(0, ia) for x in (sa.inner, sa.inner_norm, sa.unit_dct, sa.sign, sa.std))
        reach, norms, dct_b, sign_b, std_b = (
            x.index_select(0, ib) for x in (sb.reach, sb.norms, sb.unit_dct, sb.sign, sb.std))
        correlations = _correlations(inner, inner_norm, reach, norms)
        per_view.append(torch.stack([
            correlations.amax(dim=1),
            (dct_a * dct_b).sum(dim=1),
            (sign_a == sign_b).float().mean(dim=1),
            ((std_a + 1) / (std_b + 1)).log().abs(),
            correlations.argmax(dim=1).float(),  # the best shift, for the unoccluded feature
        ], dim=1))
    views = torch.stack(per_view)  # (views, P, 5)
    # the first view within VIEW_TIE of the best: views that tie (an exact copy, a flat image)
    # do not pick one by rounding, which differs with the batch and the device
    correlation = views[:, :, 0]
    best = (correlation >= correlation.amax(dim=0) - VIEW_TIE).int().argmax(dim=0)
    chosen = views[best, torch.arange(len(a), device=device)]
    # colour and texture are compared at the chosen alignment, so that a pad, a trimmed
    # border or a mirror is not counted as a difference of the images themselves; what
    # depends on one image at its view (texture, fine detail) is found once per such image
    chosen_a = _Chosen.of(seen_a, ia, best, [va for va, _ in pairs])
    chosen_b = _Chosen.of(seen_b, ib, best, [vb for _, vb in pairs])
    ca, cb = (torch.from_numpy(colour[x]).to(device).float().permute(0, 3, 1, 2) for x in (a, b))
    ca, cb = _at_views(ca, cb, best, pairs)
    ca, cb = _level_free(ca), _level_free(cb)
    texture_a, texture_b = (_texture(x.grey[:, 0]).index_select(0, x.inverse)
                            for x in (chosen_a, chosen_b))
    plain = torch.stack([
        chosen[:, 0], chosen[:, 1], chosen[:, 2], _colour_difference(ca, cb), chosen[:, 3],
        torch.log1p(torch.minimum(texture_a, texture_b)),
        torch.log1p(torch.maximum(texture_a, texture_b)),
        (best > 0).float(), _detail_correlation(chosen_a, chosen_b), *_chroma(ca, cb),
        _unoccluded_correlation(chosen_a.normed.index_select(0, chosen_a.inverse),
                                chosen_b.normed.index_select(0, chosen_b.inverse),
                                chosen[:, 4].long()),
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
    chroma_look[:, column] = torch.where(looked, _colour_difference(*chroma_matched(ca, cb)),
                                         plain[:, column])
    return torch.stack([plain, chroma_look])


def _colour_difference(ca: torch.Tensor, cb: torch.Tensor) -> torch.Tensor:
    return (ca - cb).abs().mean(dim=(1, 2, 3))


def chroma_matched(ca: torch.Tensor, cb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
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


def grey_tensor(grey: np.ndarray, rows: np.ndarray, device: str) -> torch.Tensor:
    return torch.from_numpy(grey[rows]).to(device).float()[:, None]


@dataclass
class _Seen:
    """One view of distinct rows, with what the pairs using it need: the view, standardised,
    its grey std, its unit low-DCT descriptor and the DCT's signs about their median; on the
    side slid over, its centred inner region; on the shifted side, its reach and
    `_window_norms`."""

    grey: torch.Tensor
    normed: torch.Tensor
    std: torch.Tensor
    unit_dct: torch.Tensor
    sign: torch.Tensor
    inner: torch.Tensor | None = None
    inner_norm: torch.Tensor | None = None
    reach: torch.Tensor | None = None
    norms: torch.Tensor | None = None



def _seen_at(images: torch.Tensor, views: set[View], shifted: bool = False
             ) -> dict[View, _Seen]:
    """Each view of the images, `_Seen` once per row rather than once per pair."""
    seen = {}
    for alignment in views:
        seen_view = view(images, *alignment)
        normed, std = standardised(seen_view)
        dct = low_dct(seen_view)
        this = _Seen(seen_view, normed, std, unit_descriptor(dct),
                     dct[:, 1:] > dct[:, 1:].median(dim=1, keepdim=True).values)
        if shifted:
            this.reach, this.norms = _reach(normed), _window_norms(normed)
        else:
            this.inner, this.inner_norm = _centred_inner(normed)
        seen[alignment] = this
    return seen


@dataclass
class _Chosen:
    """The distinct (row, view)s that one side of a chunk's pairs is seen at: grey and
    standardised, and for every pair the index of its own among them."""

    grey: torch.Tensor
    normed: torch.Tensor
    inverse: torch.Tensor

    @classmethod
    def of(cls, seen: dict[View, _Seen], index: torch.Tensor, best: torch.Tensor,
           views: list[View]) -> _Chosen:
        """`index`: each pair's row among `seen`'s; `best`: the index of its alignment,
        `views`: that side's view of every alignment."""
        distinct_views = list(dict.fromkeys(views))
        view_id = torch.tensor([distinct_views.index(v) for v in views], device=best.device)
        rows = len(seen[views[0]].grey)
        keys, inverse = torch.unique(view_id[best] * rows + index, return_inverse=True)
        first = seen[views[0]]
        grey = first.grey.new_empty((len(keys), *first.grey.shape[1:]))
        normed = first.normed.new_empty((len(keys), *first.normed.shape[1:]))
        for number, this in enumerate(distinct_views):
            pick = (keys // rows == number).nonzero()[:, 0]
            row = keys[pick] % rows
            grey.index_copy_(0, pick, seen[this].grey.index_select(0, row))
            normed.index_copy_(0, pick, seen[this].normed.index_select(0, row))
        return cls(grey, normed, inverse)


def _at_views(a: torch.Tensor, b: torch.Tensor, best: torch.Tensor,
              pairs: list[tuple[View, View]]
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Both images of every pair (N, C, H, W) seen at the pair's chosen alignment."""
    out_a, out_b = a.clone(), b.clone()
    for index, (view_a, view_b) in enumerate(pairs):
        pick = best == index
        if index and pick.any():
            out_a[pick], out_b[pick] = view(a[pick], *view_a), view(b[pick], *view_b)
    return out_a, out_b
