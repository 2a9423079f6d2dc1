"""Benchmark: dedup's nearest-neighbour search at millions of rows, its cost and its recall.

    python bench/knn_scale.py [--rows 3000000] [--visited 4 8 16] [--seed 0]

The rows: the held-out near-duplicate set of bench/dedup.py (AugLy copies of photos dedup
was not tuned on) hidden among `--rows` random crops of the sample photos, all as dedup sees
them (views.descriptors of 32x32 grey thumbnails, three views per row). Measured in one run:

* exact search, for the held-out rows only: the candidate pairs dedup would get from an
  exact search of the whole set (the truth the approximate search is scored against);
* neighbours.InvertedLists, the search dedup uses above neighbours.EXACT_SEARCH_ROWS, for every row
  and view, at each `--visited` (lists searched per query): seconds, the matrix products'
  speed against a large fp32 matrix product on the same cores (the physical limit), and
  recall of the exact candidates, of all and of the true copies among them;
* faiss's IndexIVFFlat over the same lists, as dedup searched before: the time of one view
  for 100,000 queries, scaled to every row (its cost per query does not depend on which).

Writes bench/out/knn_scale/results.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from neardup_sets import build, random_crop, tuning_photos  # noqa: E402

from dcgan_data.dedup import neighbours, thumbnails, views  # noqa: E402
from dcgan_data.dedup.options import DedupOptions  # noqa: E402

DEFAULTS = DedupOptions()

OUT = ROOT / "bench" / "out" / "knn_scale"
VIEWS = [(1.0, False), *((z, False) for z in views.ZOOMS)]
FAISS_QUERIES = 100_000


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def background(count: int, rng: np.random.Generator) -> np.ndarray:
    """(count, 32, 32) grey thumbnails of random crops of the sample photos."""
    photos = [cv2.cvtColor(p, cv2.COLOR_RGB2GRAY) for p in tuning_photos()]
    grey = np.empty((count, thumbnails.GREY, thumbnails.GREY), np.uint8)
    for i in range(count):
        photo = photos[int(rng.integers(len(photos)))]
        grey[i] = random_crop(photo, rng, (thumbnails.GREY, thumbnails.GREY), 64)[0]
    return grey


def true_pairs(groups: np.ndarray, kinds: list[str], offset: int) -> set[tuple[int, int]]:
    """Pairs of rows of one group (mirror copies aside: dedup scores them apart)."""
    pairs = set()
    for group in np.unique(groups):
        rows = [i for i in np.flatnonzero(groups == group) if kinds[i] != "mirror"]
        pairs |= {(offset + a, offset + b) for i, a in enumerate(rows) for b in rows[i + 1 :]}
    return pairs


def exact_candidates(base: np.ndarray, views: list[np.ndarray], rows: np.ndarray, k: int
                     ) -> set[tuple[int, int]]:
    """Candidate pairs an exact search proposes for `rows` (as neighbour_pairs does)."""
    pairs = set()
    for query in views:
        asked = torch.from_numpy(query[rows])
        top = torch.full((len(rows), 0), -2.0)
        found = torch.zeros((len(rows), 0), dtype=torch.int64)
        for start in range(0, len(base), 1 << 18):  # the best k + 1 so far, merged per block
            block = (asked @ torch.from_numpy(base[start : start + (1 << 18)]).T).topk(k + 1)
            top, at = torch.cat([top, block.values], 1).topk(k + 1)
            found = torch.cat([found, block.indices + start], 1).gather(1, at)
        for i, row in enumerate(rows.tolist()):
            pairs |= {(min(row, f), max(row, f)) for s, f in
                      zip(top[i].tolist(), found[i].tolist(), strict=True)
                      if s >= DEFAULTS.min_cosine and f != row}
    return pairs


def matmul_gflops(seconds: float = 3.0) -> float:
    a, b = torch.randn(4096, 4096), torch.randn(4096, 4096)
    a @ b
    done, clock = 0, time.perf_counter()
    while time.perf_counter() - clock < seconds:
        a @ b
        done += 1
    return done * 2 * 4096**3 / (time.perf_counter() - clock) / 1e9


def faiss_seconds(base: np.ndarray, search: neighbours.InvertedLists, visited: int) -> float:
    """Seconds for faiss's IndexIVFFlat (the same lists) to search one view of every row."""
    import faiss

    dim = base.shape[1]
    index = faiss.IndexIVFFlat(search.centroids, dim, search.centroids.ntotal,
                               faiss.METRIC_INNER_PRODUCT)
    index.is_trained = True
    index.add(base)
    index.nprobe = visited
    clock = time.perf_counter()
    index.search(base[:FAISS_QUERIES], DEFAULTS.neighbours + 1)
    return (time.perf_counter() - clock) * len(base) / min(len(base), FAISS_QUERIES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--visited", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    result = {"rows": args.rows, "uptime": uptime(), "runs": []}
    rgb, groups, kinds = build("held-out", 0, 30)
    grey = np.concatenate([background(args.rows, np.random.default_rng(args.seed)),
                           thumbnails.thumbnails(rgb)[0]])
    planted = np.arange(args.rows, len(grey))
    views = [views.descriptors(grey, zoom, mirror) for zoom, mirror in VIEWS]
    k = DEFAULTS.neighbours
    exact = exact_candidates(views[0], views, planted, k)
    true = true_pairs(groups, kinds, args.rows) & exact
    result |= {"held_out_rows": len(planted), "exact_candidates": len(exact),
               "exact_true_candidates": len(true)}
    clock = time.perf_counter()
    search = neighbours.InvertedLists(views[0])
    result["build_s"] = round(time.perf_counter() - clock, 1)
    result["matmul_gflops"] = round(matmul_gflops(), 1)
    for visited in args.visited:
        neighbours.LISTS_VISITED = visited
        clock, found = time.perf_counter(), set()
        for query in views:
            a, b = search.nearest(query, k, DEFAULTS.min_cosine)
            mine = a >= args.rows
            found |= set(zip(np.minimum(a[mine], b[mine]).tolist(),
                             np.maximum(a[mine], b[mine]).tolist(), strict=True))
        seconds = time.perf_counter() - clock
        flops = 2 * len(views) * len(grey) * visited * neighbours.LIST_ROWS * views[0].shape[1]
        run = {"visited": visited, "uptime": uptime(), "three_views_s": round(seconds, 1),
               "gflops": round(flops / seconds / 1e9, 1),
               "recall_of_exact": round(len(found & exact) / len(exact), 4),
               "recall_of_true": round(len(found & true) / len(true), 4),
               "faiss_ivfflat_three_views_s": round(
                   len(views) * faiss_seconds(views[0], search, visited), 1)}
        run["speedup_vs_faiss"] = round(run["faiss_ivfflat_three_views_s"] / seconds, 1)
        result["runs"].append(run)
        print(json.dumps(run), flush=True)
    result["uptime_after"] = uptime()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
