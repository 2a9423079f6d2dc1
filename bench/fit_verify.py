"""Fit the verification model (dcgan_data/verify_model.json) on the tuning set.

    python bench/fit_verify.py [--seeds 1 2 3] [--per-photo 30] [--precision 0.995]

Builds the tuning set once per seed (bench/neardup_sets.py: the sample photos, this project's
own edits; several seeds give more pairs, so a steadier threshold),
proposes candidates as dedup does (nearest neighbours by DCT descriptor, with zoomed views)
and adds every true pair, computes the pair features, fits the logistic model, and sets its
threshold: the lowest log-odds at which the candidate pairs above it are at least
`--precision` true on this set. Mirror copies are left out (dedup scores them apart). The
held-out set is not touched: bench/dedup.py scores the result on it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from neardup_sets import build  # noqa: E402

from dcgan_data import dedup as dd  # noqa: E402
from dcgan_data import verify  # noqa: E402
from dcgan_data.neardup import MIRROR  # noqa: E402


def training_pairs(rows: np.ndarray, truth: np.ndarray, kinds: list[str]
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    grey, colour = verify.thumbnails(rows)
    a, b = verify.neighbour_pairs(grey, dd.DEFAULT_NEIGHBOURS, dd.MIN_COSINE)
    members = {g: np.flatnonzero(truth == g) for g in np.unique(truth)}
    true_a = [m[i] for m in members.values() for i in range(len(m)) for _ in m[i + 1 :]]
    true_b = [m[j] for m in members.values() for i in range(len(m)) for j in range(i + 1, len(m))]
    a, b = verify.unique_pairs(np.r_[a, true_a].astype(np.int64),
                               np.r_[b, true_b].astype(np.int64), len(rows))
    mirror = np.array([k == MIRROR for k in kinds])
    keep = ~(mirror[a] | mirror[b])
    a, b = a[keep], b[keep]
    features = verify.pair_features(grey, colour, a, b)
    return features, truth[a] == truth[b], np.c_[a, b]


def threshold_for(scores: np.ndarray, same: np.ndarray, precision: float) -> float:
    order = np.argsort(-scores)
    true_above = np.cumsum(same[order])
    share = true_above / np.arange(1, len(order) + 1)
    ok = np.flatnonzero(share >= precision)
    return float(scores[order][ok[-1]]) if len(ok) else float(scores.max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--per-photo", type=int, default=30)
    parser.add_argument("--precision", type=float, default=0.995)
    args = parser.parse_args()
    features, same, images = [], [], 0
    for seed in args.seeds:
        rows, truth, kinds = build("tuning", seed, args.per_photo)
        seed_features, seed_same, _ = training_pairs(rows, truth, kinds)
        features.append(seed_features)
        same.append(seed_same)
        images += len(rows)
    features, same = np.concatenate(features), np.concatenate(same)
    params = verify.fit(features, same)
    model = verify.VerifyModel({**params, "threshold": 0.0})
    scores = model.log_odds(features)
    threshold = threshold_for(scores, same, args.precision)
    params.update(threshold=round(threshold, 4), fitted_on={
        "set": "tuning", "seeds": args.seeds, "per_photo": args.per_photo, "images": images,
        "pairs": int(len(same)), "true_pairs": int(same.sum()),
        "pair_precision_target": args.precision,
        "true_pairs_above_threshold": round(float((scores[same] >= threshold).mean()), 4)})
    verify.MODEL_FILE.write_text(json.dumps(params, indent=1) + "\n")
    print(json.dumps(params["fitted_on"], indent=1), f"threshold {threshold:.3f}")


if __name__ == "__main__":
    main()
