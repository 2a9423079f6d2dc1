"""Benchmark: the verification's cost per candidate pair, on the pairs dedup proposes.

    python bench/verify_cost.py [--rows 20000] [--repeats 3] [--threads 1] [--checkout DIR]

Random 64 px crops of the sample photos (bench/dedup_scale.make_set, 5% planted copies), their
thumbnails, the nearest-neighbour candidate pairs dedup would verify, then
`features.pair_features` on them, timed --repeats times (CPU seconds of this process, torch on
--threads threads). `--checkout DIR` times the dcgan_data of another checkout (a git
worktree of an earlier commit): run both in turn, in the same session. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from dedup_scale import make_set  # noqa: E402


def pair_features(module, grey: np.ndarray, colour: np.ndarray, a: np.ndarray, b: np.ndarray
                  ) -> np.ndarray:
    """`module.pair_features` of the pairs, called as the checkout's version takes them."""
    if "grey_a" in inspect.signature(module.pair_features).parameters:  # before 2026-11-24
        return module.pair_features(grey[a], colour[a], grey[b], colour[b])
    return module.pair_features(grey, colour, a, b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--checkout", type=Path, default=None)
    args = parser.parse_args()
    if args.checkout is not None:
        sys.path.insert(0, str(args.checkout.resolve()))
    # imported only now, so that --checkout decides which dcgan_data is timed
    thumbnails = importlib.import_module("dcgan_data.dedup.thumbnails")
    neighbours = importlib.import_module("dcgan_data.dedup.neighbours")
    features = importlib.import_module("dcgan_data.dedup.features")
    DEFAULTS = importlib.import_module("dcgan_data.dedup.options").DedupOptions()
    shard_set = importlib.import_module("dcgan_data.core.shards").ShardSet
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        make_set(Path(folder) / "set", args.rows, 0.05, seed=0)
        rows = shard_set(Path(folder) / "set").load()
    grey, colour = thumbnails.thumbnails(rows)
    a, b = neighbours.neighbour_pairs(grey, DEFAULTS.neighbours, DEFAULTS.min_cosine)
    per_pair, wall_per_pair = [], []
    for _ in range(args.repeats):
        start, wall = time.process_time(), time.perf_counter()
        pair_features(features, grey, colour, a, b)
        per_pair.append((time.process_time() - start) / len(a) * 1e3)
        wall_per_pair.append((time.perf_counter() - wall) / len(a) * 1e3)
    print(json.dumps({"checkout": str(Path(features.__file__).parents[2]), "rows": args.rows,
                      "pairs": len(a), "threads": args.threads,
                      "cpu_ms_per_pair": [round(x, 4) for x in per_pair],
                      "wall_ms_per_pair": [round(x, 4) for x in wall_per_pair],
                      "load_average": os.getloadavg()}))


if __name__ == "__main__":
    main()
