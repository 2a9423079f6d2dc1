"""Where dedup loses copies on a held-out DEV set, by edit kind: for each copy's pair with its
original, was it proposed as a candidate at all, and did it pass verification (and by how
many log-odds did it fall short)?

    python bench/dedup_holdout_losses.py [--sets albu-dev augly-dev] [--setting min_cosine=0.8]

Runs dedup at its defaults (each --setting changes one DedupOptions field) on the rows and
hash model that `bench/dedup_holdout.py` left in bench/out/holdout/runs/SET/default, and
records the candidate pairs and their first scores (before grouping). FINAL sets are
refused: they stay untouched until a change's final figures. Writes
bench/out/holdout/losses_SET.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tools"))

from dedup_holdout import DEV_SETS, Truth  # noqa: E402
from holdout_sets import OUT as HOLDOUT  # noqa: E402

from dcgan_data.core.shards import ShardSet  # noqa: E402
from dcgan_data.dedup import decide  # noqa: E402
from dcgan_data.dedup.stage import dedup  # noqa: E402


def first_scores(src: Path, hash_model: Path, settings: dict) -> tuple[np.ndarray, ...]:
    """(a, b, log-odds, threshold) of every candidate pair of a dedup run on SRC, as first
    scored (before the grouping's rechecks)."""
    seen: dict = {}
    propose, verifier_call = decide.candidate_pairs, decide.Verifier.__call__

    def proposed(*args, **kwargs):
        pairs = propose(*args, **kwargs)
        seen.update(a=pairs[0], b=pairs[1])
        return pairs

    def scored(self, a, b):
        scores = verifier_call(self, a, b)
        seen.setdefault("scores", scores.copy())
        seen.setdefault("threshold", self.threshold)
        return scores

    decide.candidate_pairs, decide.Verifier.__call__ = proposed, scored
    try:
        with tempfile.TemporaryDirectory() as out:
            dedup(src, out, dry_run=True, hash_model=str(hash_model), **settings)
    finally:
        decide.candidate_pairs, decide.Verifier.__call__ = propose, verifier_call
    return seen["a"], seen["b"], seen.get("scores", np.zeros(0, np.float32)), \
        seen.get("threshold", np.inf)


def losses(name: str, settings: dict) -> dict:
    run = HOLDOUT / "runs" / name / "default"
    if not (run / "hash_model.pt").exists():
        sys.exit(f"{run} is missing: run bench/dedup_holdout.py --sets {name} first")
    a, b, scores, threshold = first_scores(run / "ingested", run / "hash_model.pt", settings)
    truth = Truth(HOLDOUT / name, ShardSet(run / "ingested").keys())
    return {"set": name, "settings": settings, "pairs_scored": len(a),
            "by_kind": copy_outcomes(a, b, scores, threshold, truth)}


def copy_outcomes(a: np.ndarray, b: np.ndarray, scores: np.ndarray, threshold: float,
                  truth: Truth) -> dict[str, dict]:
    """Per edit kind: how many copies' pairs with their original were not proposed, failed or
    passed, and the median log-odds the failed ones fell short by."""
    low, high = np.minimum(a, b).tolist(), np.maximum(a, b).tolist()
    score = dict(zip(zip(low, high, strict=True), scores.tolist(), strict=True))
    original = {g: i for i, (g, role) in enumerate(zip(truth.group, truth.role, strict=True))
                if role == "original"}
    outcome: dict[str, Counter] = defaultdict(Counter)
    short: dict[str, list[float]] = defaultdict(list)
    for i, (group, role, kind) in enumerate(zip(truth.group, truth.role, truth.kind,
                                                strict=True)):
        if role != "copy" or group not in original:
            continue
        pair = (min(i, original[group]), max(i, original[group]))
        if pair not in score:
            outcome[kind]["not_proposed"] += 1
        elif score[pair] >= threshold:
            outcome[kind]["passed"] += 1
        else:
            outcome[kind]["failed"] += 1
            short[kind].append(threshold - score[pair])
    return {kind: {**counts, "median_short": round(float(np.median(short[kind])), 2)
                   if short[kind] else None}
            for kind, counts in sorted(outcome.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="*", default=list(DEV_SETS))
    parser.add_argument("--setting", action="append", default=[], metavar="FIELD=VALUE",
                        help="a DedupOptions field to change, e.g. min_cosine=0.8 (not the "
                             "CLI spelling of bench/dedup_holdout.py's --dedup-args)")
    args = parser.parse_args()
    if any(name not in DEV_SETS for name in args.sets):
        parser.error("only DEV sets: the FINAL sets stay untouched")
    settings = {key: json.loads(value) for key, value in
                (item.split("=", 1) for item in args.setting)}
    for name in args.sets:
        result = losses(name, settings)
        (HOLDOUT / f"losses_{name}.json").write_text(json.dumps(result, indent=1))
        print(f"{name}: {result['pairs_scored']} candidate pairs scored")
        print(f"{'kind':20s} {'not proposed':>12s} {'failed':>7s} {'passed':>7s}  median short")
        for kind, c in sorted(result["by_kind"].items(),
                              key=lambda item: -item[1].get("not_proposed", 0)
                              - item[1].get("failed", 0)):
            print(f"{kind:20s} {c.get('not_proposed', 0):12d} {c.get('failed', 0):7d} "
                  f"{c.get('passed', 0):7d}  {c['median_short']}")


if __name__ == "__main__":
    main()
