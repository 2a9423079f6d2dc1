"""Fit the verification model (dcgan_data/dedup/verify_model.json) on the tuning set.

    python tools/fit_verify.py [--seeds 1 2 3] [--per-photo 30] [--precision 0.995]
                               [--hard-negatives 20000] [--tone-band 10] [--tone-only]

Builds the tuning set once per seed (tools/neardup_sets.py: the sample photos, this project's
own edits; several seeds give more pairs, so a steadier threshold), proposes candidates as
dedup does (nearest neighbours by DCT descriptor, with zoomed views) and adds every true
pair, computes the pair features, adds lookalike pairs between crops of different photos
(`hard_negatives`: candidates dedup would propose among random crops, all false), fits the
logistic model on both, and sets its threshold on the tuning pairs: the lowest log-odds at
which the candidate pairs above it are at least `--precision` true there. Then the second
look: pairs within `--align-band` below the threshold are aligned
(alignment.aligned_pair_features) and scored again, and the margin an aligned pair must clear
is the least that keeps all accepted pairs `--precision` true; the overlay look's margin
(pairs within `--overlay-band`) and the chroma look's (every pair) are set alike, each on
the scores after the looks before it, in dedup's order, the chroma look's also high enough
that no hard negative passes it (it looks at every pair, so at scale mostly lookalikes); last
the tone look's (pairs within `--tone-band`), which no hard negative may pass either.
`--tone-only` keeps the model file as it is and fits the tone look's margin alone, on the
verifier's scores after its other looks (what the committed model's tone margin comes from).
Mirror copies are left out (dedup scores them apart). The held-out set is not touched:
bench/dedup.py scores the result on it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from neardup_sets import build, random_crop, tuning_photos  # noqa: E402

from dcgan_data.dedup import (  # noqa: E402
    alignment,
    grouping,
    logistic,
    neighbours,
    overlay,
    thumbnails,
    tone,
    verify,
)
from dcgan_data.dedup.features import pair_looks  # noqa: E402
from dcgan_data.dedup.options import DedupOptions  # noqa: E402
from dcgan_data.testing.neardup import MIRROR  # noqa: E402

DEFAULTS = DedupOptions()

# below dedup's own floor (MIN_COSINE): the fit sees more lookalikes than dedup proposes
FIT_MIN_COSINE = 0.75


def labelled_pairs(grey: np.ndarray, colour: np.ndarray, truth: np.ndarray, kinds: list[str]
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features (`pair_looks`: the plain and the chroma look), truth and rows of the
    candidate pairs plus every true pair, mirrors aside."""
    a, b = neighbours.neighbour_pairs(grey, DEFAULTS.neighbours, FIT_MIN_COSINE)
    members = {g: np.flatnonzero(truth == g) for g in np.unique(truth)}
    true_a = [m[i] for m in members.values() for i in range(len(m)) for _ in m[i + 1 :]]
    true_b = [m[j] for m in members.values() for i in range(len(m)) for j in range(i + 1, len(m))]
    a, b = grouping.unique_pairs(np.r_[a, true_a].astype(np.int64),
                               np.r_[b, true_b].astype(np.int64), len(grey))
    mirror = np.array([k == MIRROR for k in kinds])
    keep = ~(mirror[a] | mirror[b])
    a, b = a[keep], b[keep]
    return pair_looks(grey, colour, a, b), truth[a] == truth[b], np.c_[a, b]


def hard_negatives(count: int, seed: int
                   ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Features (both looks) of candidate pairs between crops of different photos: `count`
    random crops of the tuning photos (any position, side 64 up), proposed as dedup proposes
    them. At a few thousand images such lookalikes are rare; among millions each row has
    several, so the model must see them to keep its precision as N grows."""
    rng = np.random.default_rng(seed)
    photos = tuning_photos()
    rows = np.empty((count, 64, 64, 3), np.uint8)
    source = rng.integers(len(photos), size=count)
    for i, p in enumerate(source):
        rows[i] = random_crop(photos[p], rng, (64, 64), 64)[0]
    grey, colour = thumbnails.thumbnails(rows)
    a, b = neighbours.neighbour_pairs(grey, DEFAULTS.neighbours, FIT_MIN_COSINE)
    apart = source[a] != source[b]
    features = pair_looks(grey, colour, a[apart], b[apart])
    return features, np.zeros(features.shape[1], bool), (grey, colour, np.c_[a[apart], b[apart]])


def second_look_scores(model: logistic.VerifyModel, look: Callable, sets: list,
                       scores: np.ndarray, threshold: float, band: float) -> np.ndarray:
    """Log-odds of the pairs within `band` below the threshold as `look` sees them (one of
    verify's second looks), set by set (`sets`: (grey, colour, pairs) each, their pairs'
    scores one after another in `scores`); NaN for the others, and where the look's features
    are NaN (no small alignment found, no compact overlay to fill)."""
    parts = []
    for grey, colour, pairs, set_scores in per_set(sets, scores):
        out = np.full(len(pairs), np.nan)
        near = verify.near_threshold(set_scores, threshold, band)
        out[near] = model.log_odds(look(grey, colour, pairs[near, 0], pairs[near, 1]))
        parts.append(out)
    return np.concatenate(parts)


def aligned_features(*args: np.ndarray) -> np.ndarray:
    return alignment.aligned_pair_features(*args)[0]


def per_set(sets: list, scores: np.ndarray) -> list[tuple]:
    """Each set's (grey, colour, pairs) with its share of `scores`."""
    parts = np.split(scores, np.cumsum([len(p) for _, _, p in sets])[:-1])
    return [(*s, part) for s, part in zip(sets, parts, strict=True)]


def looked_again(scores: np.ndarray, again: np.ndarray, margin: float) -> np.ndarray:
    """Scores after a second look: the better of the two, the second less its margin."""
    return np.where(~np.isnan(again) & (again - margin > scores), again - margin, scores)


def fitted_look(scores: np.ndarray, same: np.ndarray, again: np.ndarray, threshold: float,
                precision: float, negatives: np.ndarray | None = None
                ) -> tuple[float, np.ndarray, np.ndarray]:
    """A look's margin (`look_margin_for`), the pairs it alone lets pass, and the scores
    after it (what the next look starts from)."""
    margin = look_margin_for(scores, same, again, threshold, precision, negatives)
    gained = ~(scores >= threshold) & (again >= threshold + margin)
    return margin, gained, looked_again(scores, again, margin)


def threshold_for(scores: np.ndarray, same: np.ndarray, precision: float) -> float:
    order = np.argsort(-scores)
    true_above = np.cumsum(same[order])
    share = true_above / np.arange(1, len(order) + 1)
    ok = np.flatnonzero(share >= precision)
    return float(scores[order][ok[-1]]) if len(ok) else float(scores.max())


def look_margin_for(scores: np.ndarray, same: np.ndarray, again: np.ndarray,
                    threshold: float, precision: float, negatives: np.ndarray | None = None
                    ) -> float:
    """The least margin by which a pair scored again by a look (aligned, unoverlaid, chroma
    matched) must pass the threshold so that all accepted pairs (those passing as they are,
    and those passing on the look) are still at least `precision` true. `again`: the pairs'
    log-odds on the look, NaN where it did not look. `negatives`: the look's log-odds of
    hard negatives, none of which may pass it."""
    passed = scores >= threshold
    true, false = int(same[passed].sum()), int((~same[passed]).sum())
    gains = np.flatnonzero(~passed & ~np.isnan(again) & (again >= threshold))
    gains = gains[np.argsort(-again[gains])]
    margin = float(again[gains[0]] - threshold) + 1e-3 if len(gains) else 0.0
    for i in gains:
        true, false = true + int(same[i]), false + int(not same[i])
        if true / (true + false) < precision:
            break
        margin = float(again[i] - threshold)
    if negatives is not None and len(negatives) and np.nanmax(negatives) >= threshold + margin:
        margin = float(np.nanmax(negatives) - threshold) + 1e-3
    return max(0.0, margin)


def fitted_tone_look(model: logistic.VerifyModel, sets: list, scores: np.ndarray,
                     same: np.ndarray, threshold: float, args: argparse.Namespace,
                     hard: tuple | None) -> tuple[float, np.ndarray, dict[str, int]]:
    """The tone look's margin (pairs within `--tone-band` scored on equalised thumbnails,
    after every other look), the pairs it alone lets pass, and how many hard negatives
    (`hard`: their set and scores after the other looks) it would let pass at that margin:
    none, as the margin is raised until none does."""
    look = tone.tone_free_pair_features
    again = second_look_scores(model, look, sets, scores, threshold, args.tone_band)
    hard_again = second_look_scores(model, look, [hard[0]], hard[1], threshold,
                                    args.tone_band) if hard else np.zeros(0)
    margin, gained, _ = fitted_look(scores, same, again, threshold, args.precision,
                                    hard_again)
    passing = int((hard_again >= threshold + margin).sum())
    return margin, gained, {"equalised": int((~np.isnan(hard_again)).sum()),
                            "gained_equalised": passing}


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--per-photo", type=int, default=30)
    parser.add_argument("--precision", type=float, default=0.995)
    parser.add_argument("--hard-negatives", type=int, default=20_000,
                        help="crops of different photos to mine lookalike pairs from")
    parser.add_argument("--align-band", type=float, default=1.5,
                        help="log-odds below the threshold within which pairs get aligned")
    parser.add_argument("--overlay-band", type=float, default=8.0,
                        help="log-odds below the threshold within which pairs are scored "
                             "again with their overlay filled in")
    parser.add_argument("--tone-band", type=float, default=10.0,
                        help="log-odds below the threshold within which pairs are scored "
                             "again on their equalised thumbnails")
    parser.add_argument("--tone-only", action="store_true",
                        help="keep the model as it is and fit the tone look's margin alone")
    return parser.parse_args()


def tone_only(args: argparse.Namespace) -> None:
    """Fit the tone look's margin alone on top of the model as it is: the pairs' scores are
    the verifier's after every other look, as dedup scores them."""
    params = json.loads(logistic.MODEL_FILE.read_text())
    sets, scores, same = [], [], []
    for seed in args.seeds:
        rows, truth, kinds = build("tuning", seed, args.per_photo)
        grey, colour = thumbnails.thumbnails(rows)
        _, seed_same, pairs = labelled_pairs(grey, colour, truth, kinds)
        sets.append((grey, colour, pairs))
        scores.append(untoned_scores(grey, colour, pairs))
        same.append(seed_same)
    hard = None
    if args.hard_negatives:
        hard_set = hard_negatives(args.hard_negatives, seed=100)[2]
        hard = (hard_set, untoned_scores(*hard_set))
    model = logistic.VerifyModel(params)
    margin, toned, stats = fitted_tone_look(model, sets, np.concatenate(scores),
                                            np.concatenate(same), model.threshold, args, hard)
    params.update(tone_band=args.tone_band, tone_margin=round(margin, 4))
    params["fitted_on"]["hard_negatives"].update(stats)
    same = np.concatenate(same)
    params["fitted_on"].update(true_pairs_gained_equalised=int((toned & same).sum()),
                               false_pairs_gained_equalised=int((toned & ~same).sum()))
    logistic.MODEL_FILE.write_text(json.dumps(params, indent=1) + "\n")
    print(json.dumps(params["fitted_on"], indent=1), f"tone margin {margin:.3f}")


def untoned_scores(grey: np.ndarray, colour: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """The verifier's scores of the pairs after every look but the tone look."""
    verifier = verify.Verifier(grey, colour, None, False, "cpu")
    verifier.model.tone_band = 0.0
    return verifier(pairs[:, 0], pairs[:, 1]).astype(np.float64)


def main() -> None:
    args = arguments()
    if args.tone_only:
        tone_only(args)
        return
    features, same, images, seeds = [], [], 0, []
    for seed in args.seeds:
        rows, truth, kinds = build("tuning", seed, args.per_photo)
        grey, colour = thumbnails.thumbnails(rows)
        seed_features, seed_same, pairs = labelled_pairs(grey, colour, truth, kinds)
        features.append(seed_features)
        same.append(seed_same)
        seeds.append((grey, colour, pairs))
        images += len(rows)
    tuning = sum(len(s) for s in same)
    if args.hard_negatives:
        hard_features, hard_same, hard_set = hard_negatives(args.hard_negatives, seed=100)
        features.append(hard_features)
        same.append(hard_same)
    looks, same = np.concatenate(features, axis=1), np.concatenate(same)
    params = logistic.fit(looks[0], same)
    model = logistic.VerifyModel({**params, "threshold": 0.0})
    scores, chroma = model.log_odds(looks[0]), model.log_odds(looks[1])
    hard, hard_chroma = scores[tuning:], chroma[tuning:]
    same, scores, chroma = same[:tuning], scores[:tuning], chroma[:tuning]
    threshold = threshold_for(scores, same, args.precision)
    overlay_look = overlay.unoverlaid_pair_features
    aligned = second_look_scores(model, aligned_features, seeds, scores, threshold,
                                 args.align_band)
    margin, gained, after_alignment = fitted_look(scores, same, aligned, threshold,
                                                  args.precision)
    filled = second_look_scores(model, overlay_look, seeds, after_alignment, threshold,
                                args.overlay_band)
    overlay_margin, unoverlaid, after_overlay = fitted_look(after_alignment, same, filled,
                                                            threshold, args.precision)
    chroma_margin, matched, after_chroma = fitted_look(after_overlay, same, chroma, threshold,
                                                       args.precision, hard_chroma)
    tone_margin, toned, tone_stats = fitted_tone_look(
        model, seeds, after_chroma, same, threshold, args,
        (hard_set, np.maximum(hard, hard_chroma - chroma_margin)) if args.hard_negatives
        else None)
    hard_filled = second_look_scores(model, overlay_look, [hard_set], hard, threshold,
                                     args.overlay_band) \
        if args.hard_negatives else np.zeros(0)
    params.update(threshold=round(threshold, 4), align_band=args.align_band,
                  align_margin=round(margin, 4), overlay_band=args.overlay_band,
                  overlay_margin=round(overlay_margin, 4),
                  chroma_margin=round(chroma_margin, 4), tone_band=args.tone_band,
                  tone_margin=round(tone_margin, 4), fitted_on={
        "set": "tuning", "seeds": args.seeds, "per_photo": args.per_photo, "images": images,
        "pairs": int(len(same)), "true_pairs": int(same.sum()),
        "pair_precision_target": args.precision,
        "hard_negatives": {"crops": args.hard_negatives, "pairs": len(hard),
                           "above_threshold": int((hard >= threshold).sum()),
                           "gained_unoverlaid": int((hard_filled >= threshold +
                                                     overlay_margin).sum()),
                           "gained_chroma_matched": int((hard_chroma >= threshold +
                                                         chroma_margin).sum()),
                           **tone_stats},
        "true_pairs_above_threshold": round(float((scores[same] >= threshold).mean()), 4),
        "pairs_aligned": int((~np.isnan(aligned)).sum()),
        "true_pairs_gained_by_alignment": int((gained & same).sum()),
        "false_pairs_gained_by_alignment": int((gained & ~same).sum()),
        "pairs_unoverlaid": int((~np.isnan(filled)).sum()),
        "true_pairs_gained_unoverlaid": int((unoverlaid & same).sum()),
        "false_pairs_gained_unoverlaid": int((unoverlaid & ~same).sum()),
        "true_pairs_gained_chroma_matched": int((matched & same).sum()),
        "false_pairs_gained_chroma_matched": int((matched & ~same).sum()),
        "true_pairs_gained_equalised": int((toned & same).sum()),
        "false_pairs_gained_equalised": int((toned & ~same).sum())})
    logistic.MODEL_FILE.write_text(json.dumps(params, indent=1) + "\n")
    print(json.dumps(params["fitted_on"], indent=1), f"threshold {threshold:.3f}")


if __name__ == "__main__":
    main()
