"""Where dedup's recall is lost, stage by stage, on the dev set (the tuning photos with
AugLy's edits: tools/neardup_sets.py), so that the held-out photos stay unlooked-into.

    python bench/dedup_losses.py [--seeds 1 2 3] [--per-photo 30]

Every true pair (an original and its copy, mirrors aside) ends in one of: `accepted` (by
dedup's verifier, both second looks included); `below_floor` (a neighbour at a floor of
0.75, not at dedup's); `not_candidate` (not even at 0.75); `far_below` (scored more than the
alignment look's band below the threshold, and not raised by the overlay look);
`band_no_alignment` (in the band, no small alignment found); `band_aligned_low` (aligned,
still short). Candidates here are the nearest-neighbour ones only (the semantic hash
proposes a few percent more and needs its model trained). Also counted: candidate pairs
accepted that are not true (`false_accepted`, with and without flat images). Writes
bench/out/dedup_losses/results.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from neardup_sets import build  # noqa: E402

from dcgan_data.dedup import alignment, logistic, neighbours, thumbnails, verify  # noqa: E402
from dcgan_data.dedup.features import pair_features  # noqa: E402
from dcgan_data.dedup.options import DedupOptions  # noqa: E402
from dcgan_data.testing.neardup import MIRROR  # noqa: E402

DEFAULTS = DedupOptions()

OUT = ROOT / "bench" / "out" / "dedup_losses"
LOW_FLOOR = 0.75


def true_pairs(truth: np.ndarray, kinds: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(original, copy) rows, low index first, and each copy's edit."""
    original = {g: i for i, (g, k) in enumerate(zip(truth, kinds, strict=True))
                if k == "original"}
    copies = [(original[g], i, k) for i, (g, k) in enumerate(zip(truth, kinds, strict=True))
              if k not in ("original", "flat", MIRROR)]
    a = np.array([min(o, c) for o, c, _ in copies])
    b = np.array([max(o, c) for o, c, _ in copies])
    return a, b, [k for _, _, k in copies]


def fates(grey: np.ndarray, colour: np.ndarray, a: np.ndarray, b: np.ndarray,
          candidates: set[int], wider: set[int]) -> list[str]:
    """What became of each pair (a[i], b[i]) in dedup's candidate and verification stages:
    accepted as dedup's verifier decides (with both its second looks); the others by their
    plain score and the alignment look (verify.near_threshold's band)."""
    n = len(grey)
    model = logistic.VerifyModel.load()
    decided = verify.Verifier(grey, colour, None, False, "cpu")(a, b)
    plain = model.log_odds(pair_features(grey, colour, a, b))
    near = verify.near_threshold(plain, model.threshold, model.align_band)
    features, found = alignment.aligned_pair_features(grey, colour, a[near], b[near])
    second = dict(zip(near.tolist(), np.where(
        found, model.log_odds(np.nan_to_num(features)) - model.align_margin, None),
        strict=True))
    out = []
    for i, (x, y, final) in enumerate(zip(a, b, decided, strict=True)):
        if x * n + y not in candidates:
            out.append("below_floor" if x * n + y in wider else "not_candidate")
        elif final >= model.threshold:
            out.append("accepted")
        elif i not in second:
            out.append("far_below")
        else:
            out.append("band_no_alignment" if second[i] is None else "band_aligned_low")
    return out


def run_seed(seed: int, per_photo: int) -> dict:
    rows, truth, kinds = build("dev", seed, per_photo)
    grey, colour = thumbnails.thumbnails(rows)
    n = len(rows)
    cand_a, cand_b = neighbours.neighbour_pairs(grey, DEFAULTS.neighbours, DEFAULTS.min_cosine)
    wide_a, wide_b = neighbours.neighbour_pairs(grey, DEFAULTS.neighbours, LOW_FLOOR)
    a, b, edits = true_pairs(truth, kinds)
    result = fates(grey, colour, a, b, set((cand_a * n + cand_b).tolist()),
                   set((wide_a * n + wide_b).tolist()))
    by_edit: dict[str, Counter] = defaultdict(Counter)
    for edit, fate in zip(edits, result, strict=True):
        by_edit[edit][fate] += 1
    verifier = verify.Verifier(grey, colour, None, False, "cpu")
    scores = verifier(cand_a, cand_b)
    kind = np.array(kinds)
    wrong = (scores >= verifier.threshold) & (truth[cand_a] != truth[cand_b]) \
        & (kind[cand_a] != MIRROR) & (kind[cand_b] != MIRROR)
    flat = (kind[cand_a] == "flat") | (kind[cand_b] == "flat")
    total = Counter(result)
    return {"seed": seed, "images": n, "true_pairs": len(a),
            "recall": round(total["accepted"] / len(a), 4), "fates": dict(total),
            "false_accepted": int(wrong.sum()),
            "false_accepted_no_flat": int((wrong & ~flat).sum()),
            "by_edit": {k: dict(v) for k, v in sorted(by_edit.items())}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--per-photo", type=int, default=30)
    args = parser.parse_args()
    results = []
    for seed in args.seeds:
        results.append(run_seed(seed, args.per_photo))
        r = results[-1]
        print(f"seed {seed}: recall {r['recall']} of {r['true_pairs']} pairs, "
              f"false accepted {r['false_accepted']} ({r['false_accepted_no_flat']} "
              f"without flats); {r['fates']}", flush=True)
        for edit, fate in r["by_edit"].items():
            lost = {k: v for k, v in fate.items() if k != "accepted"}
            if lost:
                print(f"  {edit:12s} {fate.get('accepted', 0)} of {sum(fate.values())}: {lost}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
