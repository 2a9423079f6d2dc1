"""Benchmark: the held-out set of bench/dedup.py over several seeds, pooled.

    python bench/dedup_seeds.py [--seeds 0 1 2 3 4 5] [--per-photo 30]

One held-out set holds ~300 true pairs, so one copy moves its recall by 0.003 and a seed's
figure says little about the next. For each seed the held-out set is built anew (other
crops of the same photos, other AugLy edits) and scored as bench/dedup.py does (`dedup` at
its defaults with its hash model trained anew, imagehash's hashes swept, the peers in
PEERS_PYTHON); then the seeds are pooled: pairs found, true and correct summed, and recall
by edit weighted by each seed's copies of that edit. Writes bench/out/dedup_seeds/results.json
(each seed's figures and the pooled ones).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tools"))

from dedup import run_set  # noqa: E402
from neardup_sets import build  # noqa: E402

OUT = ROOT / "bench" / "out" / "dedup_seeds"
OURS = "dedup defaults"
PHASH = "phash <= 10 (imagededup default)"


def pooled(seeds: dict[int, dict]) -> dict:
    """Sums of pairs over the seeds, for every method every seed has, with and without
    the flat images; recall by edit weighted by copies."""
    methods = set.intersection(*(set(s["methods"]) for s in seeds.values()))
    out = {}
    for method in sorted(methods):
        runs = [s["methods"][method] for s in seeds.values()]
        if any("error" in r for r in runs):
            continue
        result: dict = {}
        for part in ("all", "no_flat"):
            found, true, correct = (sum(r[part][k] for r in runs)
                                    for k in ("found_pairs", "true_pairs", "correct_pairs"))
            result[part] = {"precision": round(correct / found, 4) if found else 1.0,
                            "recall": round(correct / true, 4), "found_pairs": found,
                            "true_pairs": true, "correct_pairs": correct}
        hits, copies = defaultdict(int), defaultdict(int)
        for r in runs:
            for edit, n in r["copies_by_edit"].items():
                hits[edit] += round(r["recall_by_edit"][edit] * n)  # copies found, exactly
                copies[edit] += n
        result["recall_by_edit"] = {e: round(hits[e] / copies[e], 3) for e in sorted(copies)}
        result["copies_by_edit"] = dict(sorted(copies.items()))
        out[method] = result
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--per-photo", type=int, default=30)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    uptime = lambda: subprocess.run(["uptime"], capture_output=True,  # noqa: E731
                                    text=True).stdout.strip()
    results: dict = {"uptime": uptime(), "seeds": {}}
    for seed in args.seeds:
        start = time.perf_counter()
        rows, truth, kinds = build("held-out", seed, args.per_photo)
        results["seeds"][seed] = run_set("held-out", rows, truth, kinds)
        ours = results["seeds"][seed]["methods"][OURS]
        print(f"seed {seed}: P {ours['no_flat']['precision']:.3f} (no flats), R "
              f"{ours['all']['recall']:.3f} ({ours['all']['correct_pairs']} of "
              f"{ours['all']['true_pairs']}), {time.perf_counter() - start:.0f} s", flush=True)
    results["pooled"] = pooled(results["seeds"])
    results["uptime_after"] = uptime()
    OUT.joinpath("results.json").write_text(json.dumps(results, indent=2) + "\n")
    print_pooled(results["pooled"])
    print(f"results: {OUT / 'results.json'}")


def print_pooled(result: dict) -> None:
    for method, r in result.items():
        a, f = r["all"], r["no_flat"]
        print(f"{method:48s} P {a['precision']:.3f} R {a['recall']:.3f} ({a['correct_pairs']} of "
              f"{a['true_pairs']})   no flats: P {f['precision']:.3f} R {f['recall']:.3f}")
    ours, peer = result[OURS]["recall_by_edit"], result[PHASH]["recall_by_edit"]
    print("recall by edit, pooled: edit, copies, ours, pHash <= 10")
    for edit, n in result[OURS]["copies_by_edit"].items():
        mark = "   <- pHash finds more" if peer[edit] > ours[edit] else ""
        print(f"  {edit:12s} {n:4d} {ours[edit]:.3f} {peer[edit]:.3f}{mark}")


if __name__ == "__main__":
    main()
