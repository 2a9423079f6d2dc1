"""Dedup's decision fitted on the dataset itself, at run time.

The fixed verifier (`verify`) scores a candidate pair on its own, with a model fitted on
other photos. How far a score must stand out depends on the dataset: in a region of
look-alikes (skies, walls, a series of one scene) many distinct images score high against
each other. So dedup decides with a second, small model fitted here on every run, from:

* the pair's fixed score;
* how far it stands out from each image's neighbourhood: the pair's score less the k-th best
  score each of its two images has against any other candidate (k in RANKS), the pair itself
  left out; in a crowd of look-alikes a pair must be much closer than the rest;
* how much texture the flatter image has.

It learns from the dataset's own rows (the paper's hash is trained on the data it
de-duplicates): positives are synthetic copies of sampled rows (`copy_edits`: tone,
compression, blur and noise, geometry, overlays, sometimes two at once); negatives are pairs
of overlapping or adjacent crops of one row, and real candidate pairs that neither image
counts among its nearest few (rarely copies). A share of the sampled rows is held back; the
run reports the recall and false-pass rate measured on them, and the share of false
removals it expects among its own pairs (the fitted probabilities, adjusted to the share of
copies among this dataset's candidates), before anything is deleted.

The threshold is the lowest at which that expected share stays within `max_false_share`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dcgan_data.dedup import copy_edits, logistic
from dcgan_data.dedup.features import FEATURES
from dcgan_data.dedup.thumbnails import COLOUR, GREY, thumbnails

FIT_ROWS = 1000  # rows sampled to make synthetic pairs from
HOLD_BACK = 0.3  # share of the sampled rows whose pairs are kept out of the fit, for the estimates
RANKS = (1, 2, 4)  # neighbourhood levels: each image's k-th best other score
FLOOR = -30.0  # log-odds standing for "no further candidate": scores are clipped to +-|FLOOR|
REAL_NEGATIVE_RANK = 4  # real pairs where neither image is among the other's best this many
BOTH_EDITED = 0.3  # share of positives where both images are edited copies
SYNTHETIC_BATCH = 64  # rows loaded and edited at a time for the synthetic pairs
NAMES = ("score",) + tuple(f"above_level_{k}" for k in RANKS) + ("texture_low",) + \
    FEATURES
QUADRATIC = False  # pairwise products of the inputs too
PRIOR_ROUNDS = 100  # EM rounds of the prior adjustment


def _clipped(scores: np.ndarray) -> np.ndarray:
    return np.clip(scores, FLOOR, -FLOOR)


class Neighbourhood:
    """Each row's best candidate scores, best first (FLOOR where it has fewer)."""

    def __init__(self, n: int, a: np.ndarray, b: np.ndarray, scores: np.ndarray):
        depth = max(RANKS) + 1
        rows = np.concatenate([a, b])
        values = _clipped(np.concatenate([scores, scores]))
        order = np.lexsort((-values, rows))
        rows, values = rows[order], values[order]
        starts = np.searchsorted(rows, np.arange(n))
        rank = np.arange(len(rows)) - starts[rows]
        self.best = np.full((n, depth), FLOOR, np.float32)
        keep = rank < depth
        self.best[rows[keep], rank[keep]] = values[keep]

    def levels(self, rows: np.ndarray, own: np.ndarray | None) -> np.ndarray:
        """(P, len(RANKS)) each row's k-th best score other than the pair's own (`own`: the
        pair's scores, NaN for a pair not among the candidates; None: none of them is)."""
        best = self.best[rows]
        out = np.empty((len(rows), len(RANKS)), np.float32)
        for i, k in enumerate(RANKS):
            level = best[:, k - 1]
            if own is not None:  # the pair itself is among the k best: one further down
                among = ~np.isnan(own) & (_clipped(own) >= level)
                level = np.where(among, best[:, k], level)
            out[:, i] = level
        return out


def stack_features(scores: np.ndarray, levels_a: np.ndarray, levels_b: np.ndarray,
                   texture_low: np.ndarray, features: np.ndarray) -> np.ndarray:
    """The run-time model's inputs (NAMES) of pairs with fixed `scores` and the fixed
    model's own `features` (FEATURES)."""
    score = _clipped(np.nan_to_num(scores, nan=FLOOR))[:, None]
    above = score - np.maximum(levels_a, levels_b)
    return np.concatenate([score, above, np.log1p(texture_low)[:, None],
                           np.nan_to_num(features)], axis=1)


@dataclass
class FitRows:
    """What the fit needs of the dataset: rows' images by index, thumbnails, textures."""
    load: Callable[[np.ndarray], np.ndarray]
    grey: np.ndarray
    colour: np.ndarray
    texture: np.ndarray
    rows: int  # rows that may be sampled (the --against rows are not ours)
    fixed_threshold: float  # the fixed model's: pairs it rejects may serve as negatives


class RunTimeModel(logistic.Logistic):
    """The fitted model: log-odds of a pair being a copy, and the chosen threshold."""

    def __init__(self, params: dict[str, Any], threshold: float):
        super().__init__(params)
        self.threshold = threshold

    def log_odds(self, features: np.ndarray, chunk: int = logistic.CHUNK_ROWS) -> np.ndarray:
        return super().log_odds(features, chunk).astype(np.float32)


def synthetic_pairs(rows: np.ndarray, data: FitRows, score: Callable[..., np.ndarray],
                    rng: np.random.Generator, batch: int = SYNTHETIC_BATCH
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fixed scores, plain features, owning row and truth of synthetic pairs made from
    `rows`: each row (or an edited copy of it) with an edited copy of itself, then two
    look-alike crops of it. Rows are loaded and edited `batch` at a time; only the
    thumbnails the fixed model scores are kept of them."""
    n = len(rows)
    # four views of each row, by view: bases, crops, copies, other crops
    grey = np.empty((4 * n, GREY, GREY), np.uint8)
    colour = np.empty((4 * n, COLOUR, COLOUR, 3), np.uint8)
    for start in range(0, n, batch):
        made = [_synthetic_views(image, rng) for image in data.load(rows[start : start + batch])]
        for view, images in enumerate(zip(*made, strict=True)):
            at = slice(view * n + start, view * n + start + len(images))
            grey[at], colour[at] = thumbnails(np.stack(images))
    k = 2 * n
    fixed, features = score(grey, colour, np.arange(k), k + np.arange(k))
    truth = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    return fixed, features, np.r_[rows, rows], truth


def _synthetic_views(image: np.ndarray, rng: np.random.Generator
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A row's base (itself or an edited copy), its edited copy and its two look-alike crops."""
    copy = copy_edits.edited_copy(image, rng)
    base = copy_edits.edited_copy(image, rng) if rng.random() < BOTH_EDITED else image
    crop, other = copy_edits.look_alike_pair(image, rng)
    return base, crop, copy, other


def real_negatives(a: np.ndarray, b: np.ndarray, scores: np.ndarray,
                   neighbourhood: Neighbourhood, sampled: np.ndarray, below: float
                   ) -> np.ndarray:
    """Indices of candidate pairs touching a sampled row where neither image has the other
    among its REAL_NEGATIVE_RANK best and the fixed model rejects them (score under `below`;
    a large group of copies has copies outside each other's few best): near, but rarely a
    copy."""
    touching = (np.isin(a, sampled) | np.isin(b, sampled)) & (scores < below)
    own = _clipped(scores)
    outside = (own < neighbourhood.best[a, REAL_NEGATIVE_RANK - 1]) & \
        (own < neighbourhood.best[b, REAL_NEGATIVE_RANK - 1])
    return np.flatnonzero(touching & outside)


def colour_negatives(sampled: np.ndarray, colour: np.ndarray, a: np.ndarray, b: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Each sampled row with the sampled row nearest in colour layout (8x8 thumbnails) that
    is not among its candidates: alike in colour, and not a copy by any generator's word."""
    n = int(max(a.max(initial=0), b.max(initial=0), sampled.max(initial=0))) + 1
    candidate = set((np.minimum(a, b) * n + np.maximum(a, b)).tolist())
    layout = colour[sampled].reshape(len(sampled), -1).astype(np.float32)
    squares = (layout * layout).sum(1)
    distance = squares[:, None] + squares[None, :] - 2 * layout @ layout.T
    np.fill_diagonal(distance, np.inf)
    first, second = [], []
    for i, order in enumerate(np.argsort(distance, axis=1)[:, :8]):
        for j in order:
            x, y = sorted((int(sampled[i]), int(sampled[j])))
            if x * n + y not in candidate:
                first.append(x)
                second.append(y)
                break
    return np.array(first, np.int64), np.array(second, np.int64)


@dataclass
class TrainingPairs:
    """Pairs the run-time model learns from: inputs, truth, kind (KINDS) and owning row."""
    features: np.ndarray
    same: np.ndarray
    kind: np.ndarray
    owner: np.ndarray


KINDS = ("copy", "look-alike crops", "near neighbours", "colour look-alikes")


def training_pairs(a: np.ndarray, b: np.ndarray, scores: np.ndarray, features: np.ndarray,
                   data: FitRows, score: Callable[..., np.ndarray],
                   neighbourhood: Neighbourhood, sampled: np.ndarray,
                   rng: np.random.Generator) -> TrainingPairs:
    """Synthetic copies and look-alike crops of the sampled rows, their near neighbours that
    are seldom copies, and the rows nearest them in colour that no generator proposed."""
    fixed, plain, owners, truth = synthetic_pairs(sampled, data, score, rng)
    levels = neighbourhood.levels(owners, None)
    synthetic = stack_features(fixed, levels, levels, data.texture[owners], plain)
    near = real_negatives(a, b, scores, neighbourhood, sampled, data.fixed_threshold)
    near_features = pair_stack_features(a[near], b[near], scores[near], features[near],
                                        neighbourhood, data.texture)
    near_owner = np.where(np.isin(a[near], sampled), a[near], b[near])
    x, y = colour_negatives(sampled, data.colour, a, b)
    colour_fixed, colour_plain = score(data.grey, data.colour, x, y)
    not_candidates = np.full(len(x), np.nan, np.float32)
    colour_features = pair_stack_features(x, y, not_candidates, colour_plain, neighbourhood,
                                          data.texture, colour_fixed)
    return TrainingPairs(
        features=np.concatenate([synthetic, near_features, colour_features]),
        same=np.r_[truth, np.zeros(len(near) + len(x), bool)],
        kind=np.r_[np.where(truth, 0, 1), np.full(len(near), 2), np.full(len(x), 3)],
        owner=np.r_[owners, near_owner, x])


def fit(a: np.ndarray, b: np.ndarray, scores: np.ndarray, features: np.ndarray, data: FitRows,
        score: Callable[..., np.ndarray], max_false_share: float, seed: int
        ) -> tuple[RunTimeModel, Neighbourhood, np.ndarray, dict[str, Any]]:
    """The run-time model fitted to this dataset's candidate pairs (a, b) with fixed `scores`,
    its threshold, its log-odds of the candidate pairs, and the run's estimates (held-back
    recall and false-pass rates, the expected false share among accepted pairs)."""
    if data.rows < 2 * len(RANKS) + 2:
        raise ValueError(f"selffit needs more rows to sample than {data.rows}")
    rng = np.random.default_rng(seed)
    neighbourhood = Neighbourhood(len(data.grey), a, b, scores)
    sampled = np.sort(rng.choice(data.rows, min(FIT_ROWS, data.rows), replace=False))
    pairs = training_pairs(a, b, scores, features, data, score, neighbourhood, sampled, rng)
    held = np.isin(pairs.owner, sampled[rng.random(len(sampled)) < HOLD_BACK])
    model = RunTimeModel(logistic.fit(pairs.features[~held], pairs.same[~held], names=NAMES,
                                    quadratic=QUADRATIC), 0.0)
    odds = model.log_odds(pairs.features)
    # the dataset's own pairs say how many false removals to expect; the synthetic
    # negatives, which are hard by design, set a floor under the threshold as well
    candidate_odds = model.log_odds(pair_stack_features(a, b, scores, features,
                                                        neighbourhood, data.texture))
    threshold, expected = choose_threshold(candidate_odds, float(pairs.same[~held].mean()),
                                           max_false_share)
    floor = negatives_floor(odds[~held & ~pairs.same], max_false_share)
    model.threshold = max(threshold, floor)
    passed = odds >= model.threshold
    estimates = {
        "rows_sampled": len(sampled), "pairs_fitted": int((~held).sum()),
        "pairs_held_back": int(held.sum()),
        "threshold": _finite(model.threshold),
        "threshold_by_expected_share": _finite(threshold),
        "threshold_by_hard_negatives": _finite(floor),
        "held_back_pass_rate_by_kind": {name: _share(passed[held & (pairs.kind == k)])
                                        for k, name in enumerate(KINDS)},
        **expected,
    }
    return model, neighbourhood, candidate_odds, estimates


def negatives_floor(odds: np.ndarray, max_false_share: float) -> float:
    """The log-odds that no more than `max_false_share` of the negatives reach."""
    if not len(odds):
        return -math.inf
    allowed = int(max_false_share * len(odds))
    return float(np.sort(odds)[::-1][allowed]) + 1e-6 if allowed < len(odds) else -math.inf


def pair_stack_features(a: np.ndarray, b: np.ndarray, scores: np.ndarray,
                        features: np.ndarray, neighbourhood: Neighbourhood,
                        texture: np.ndarray, fixed: np.ndarray | None = None) -> np.ndarray:
    """The run-time model's inputs for pairs (a, b) with plain `features` and fixed `scores`
    (NaN for a pair that is no candidate; its score is then in `fixed`)."""
    fixed = scores if fixed is None else np.where(np.isnan(scores), fixed, scores)
    return stack_features(fixed, neighbourhood.levels(a, scores),
                          neighbourhood.levels(b, scores), np.minimum(texture[a], texture[b]),
                          features)


def choose_threshold(odds: np.ndarray, train_prior: float, max_false_share: float
                     ) -> tuple[float, dict[str, Any]]:
    """The lowest log-odds threshold at which the expected share of false pairs among the
    accepted ones is at most `max_false_share`. The fitted probabilities assume the fit's
    share of copies; the share among this dataset's candidates is estimated by EM (the
    probabilities re-weighted to a prior until the prior is their mean) and they are adjusted
    to it."""
    shift = _prior_shift(odds, train_prior)
    adjusted = odds + shift
    order = np.argsort(-adjusted)
    distinct = 1 / (1 + np.exp(adjusted[order].astype(np.float64)))  # P(not a copy)
    expected_false = np.cumsum(distinct)
    share = expected_false / np.arange(1, len(order) + 1)
    ok = np.flatnonzero(share <= max_false_share)
    if not len(ok):
        threshold = math.inf
        accepted = 0
    else:
        last = ok[-1]
        threshold = float(odds[order[last]])  # the last accepted pair's own odds, exactly
        accepted = last + 1
    expected = {
        "candidate_copy_share": round(float(1 / (1 + math.exp(-_logit(train_prior) - shift))
                                            if len(odds) else 0.0), 4),
        "expected_false_pairs": round(float(expected_false[accepted - 1]) if accepted else 0.0,
                                      1),
        "expected_false_share": round(float(share[accepted - 1]) if accepted else 0.0, 4),
        "pairs_accepted": int(accepted),
    }
    return threshold, expected


def _prior_shift(odds: np.ndarray, train_prior: float) -> float:
    """Log-odds shift from the fit's prior to this dataset's (EM on the candidates)."""
    if not len(odds):
        return 0.0
    base = _logit(train_prior)
    prior = train_prior
    odds = odds.astype(np.float64)
    for _ in range(PRIOR_ROUNDS):
        shift = _logit(prior) - base
        new = float(np.mean(1 / (1 + np.exp(-(odds + shift)))))
        new = min(max(new, 1e-6), 1 - 1e-6)
        if abs(new - prior) < 1e-7:
            prior = new
            break
        prior = new
    return _logit(prior) - base


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _finite(value: float) -> float | None:
    """A threshold for the report: None where none could be set (JSON has no infinity)."""
    return round(value, 3) if math.isfinite(value) else None


def _share(passed: np.ndarray) -> float | None:
    return round(float(passed.mean()), 4) if len(passed) else None
