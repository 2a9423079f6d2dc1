"""Benchmark: the cost of dedup's nearest-neighbour search at millions of rows.

    python bench/knn_scale.py [--rows 3000000] [--base 100000] [--seed 0]

Descriptors as dedup computes them (verify.descriptors of 32x32 grey thumbnails) of `--base`
random crops of the sample photos, each repeated with small random changes (then made unit
length again) up to `--rows`: what the search costs depends on the number of rows and how they
spread over the index's lists, not on what they show, so this measures the cost, not the
quality, of the search. Times the index dedup builds above verify.EXACT_SEARCH_ROWS (an
inverted-file index) and one search of every row (dedup searches three views of each row).
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from neardup_sets import tuning_photos  # noqa: E402

from dcgan_data import dedup, verify  # noqa: E402

OUT = ROOT / "bench" / "out" / "knn_scale"


def base_descriptors(count: int, rng: np.random.Generator) -> np.ndarray:
    photos = [cv2.cvtColor(p, cv2.COLOR_RGB2GRAY) for p in tuning_photos()]
    grey = np.empty((count, verify.GREY, verify.GREY), np.uint8)
    for i in range(count):
        photo = photos[int(rng.integers(len(photos)))]
        side = int(rng.integers(64, min(photo.shape) + 1))
        y, x = (int(rng.integers(0, d - side + 1)) for d in photo.shape)
        grey[i] = cv2.resize(photo[y : y + side, x : x + side], (verify.GREY, verify.GREY),
                             interpolation=cv2.INTER_AREA)
    return verify.descriptors(grey)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--base", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    base = base_descriptors(args.base, rng)
    rows = np.empty((args.rows, base.shape[1]), np.float32)
    for start in range(0, args.rows, len(base)):
        part = base[: args.rows - start] + rng.normal(0, 0.05, base[: args.rows - start].shape)
        rows[start : start + len(part)] = part / np.linalg.norm(part, axis=1, keepdims=True)
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    clock = time.perf_counter()
    index = verify._knn_index(rows)
    built = time.perf_counter() - clock
    clock = time.perf_counter()
    index.search(rows, dedup.DEFAULT_NEIGHBOURS + 1)
    searched = time.perf_counter() - clock
    result = {"rows": args.rows, "base": args.base, "uptime": uptime,
              "uptime_after": subprocess.run(["uptime"], capture_output=True,
                                             text=True).stdout.strip(),
              "index": type(index).__name__, "build_s": round(built, 1),
              "search_one_view_s": round(searched, 1),
              "search_three_views_s": round(3 * searched, 1)}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
