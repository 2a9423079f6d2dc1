"""Benchmark: does dedup's precision hold as the set grows? Time and real memory at scale.

    python bench/dedup_scale.py [--rows 100000 300000] [--copies 0.05] [--kind collages]

For each size N, N 64x64 rows made from the sample photos, of which a share `--copies` are
replaced by edited copies (this project's own edits) of other rows. `--kind crops`: each row
a random crop (any position and size, so low-texture crops of skies, walls and wood abound;
the photos are few, so as N grows two crops of one photo overlap more and more often, and
their box overlap is reported). `--kind collages`: each row 3x3 tiles cut from random
crops, so that rows are unrelated unless planted, and every removal that is not a planted
copy of its keeper is a false one. `dedup` runs at its defaults in a child process;
reported: removed share, precision (removals that are planted copies of their keeper) and
recall of the planted copies, seconds per stage, and the peak anonymous memory (RssAnon
sampled every 0.2 s: the shards' mapped pages are not counted, they belong to the page
cache). Writes bench/out/dedup_scale/results_KIND.json. `--keep` keeps each set (with its
planted sources in set.npz) and a later run with --keep reuses it instead of making it again,
so a set that takes an hour to make can be measured more than once.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

OUT = ROOT / "bench" / "out" / "dedup_scale"
SHARD_ROWS = 65_536


COLLAGE_CUTS = (0, 21, 42, 64)  # a 3x3 grid of tiles


def collage(photos: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """A 64x64 image of 3x3 tiles, each a random crop (side 24-256, maybe mirrored) of a
    random photo: two collages look alike only if nearly all their tiles do."""
    from neardup_sets import random_crop

    out = np.empty((64, 64, 3), np.uint8)
    for top, bottom in zip(COLLAGE_CUTS, COLLAGE_CUTS[1:], strict=False):
        for left, right in zip(COLLAGE_CUTS, COLLAGE_CUTS[1:], strict=False):
            photo = photos[int(rng.integers(len(photos)))]
            tile = random_crop(photo, rng, (right - left, bottom - top), 24, 256)[0]
            out[top:bottom, left:right] = tile[:, ::-1] if rng.random() < 0.5 else tile
    return out


def make_set(path: Path, n: int, copies: float, seed: int, kind: str = "crops"
             ) -> tuple[np.ndarray, np.ndarray]:
    """Write N rows as shards; return each row's source row (itself unless a planted copy)
    and each original's crop box (photo, y, x, side; photo -1 for a collage)."""
    from neardup_sets import random_crop, tuning_photos

    from dcgan_data.core.shards import ShardWriter
    from dcgan_data.testing.neardup import TRANSFORMS

    rng = np.random.default_rng(seed)
    photos = tuning_photos()
    source = np.arange(n)
    for row in np.sort(rng.choice(np.arange(1, n), int(n * copies), replace=False)):
        source[row] = source[rng.integers(0, row)]  # an earlier row's original
    wanted = set(source[source != np.arange(n)].tolist())
    edits = list(TRANSFORMS)
    writer = ShardWriter(path, (64, 64, 3), {"bench": "dedup_scale", "rows": n})
    originals: dict[int, np.ndarray] = {}
    boxes = np.full((n, 4), -1, np.int64)
    for shard, start in enumerate(range(0, n, SHARD_ROWS)):
        rows = np.empty((min(SHARD_ROWS, n - start), 64, 64, 3), np.uint8)
        for i in range(len(rows)):
            row = start + i
            if source[row] != row:
                rows[i] = TRANSFORMS[str(rng.choice(edits))](originals[int(source[row])], rng)
                continue
            if kind == "collages":
                rows[i] = collage(photos, rng)
            else:
                photo_index = int(rng.integers(len(photos)))
                rows[i], box = random_crop(photos[photo_index], rng, (64, 64), 96)
                boxes[row] = (photo_index, *box)
            if row in wanted:
                originals[row] = rows[i].copy()
        writer.write(shard, rows, [f"r{j:08d}" for j in range(start, start + len(rows))])
    writer.finish(len(range(0, n, SHARD_ROWS)))
    return source, boxes


def made_set(path: Path, n: int, args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """make_set's result, reused from PATH when --keep and a set made with the same
    settings is there (its set.npz is written last, so a killed make is made again)."""
    marker = path / "set.npz"
    settings = np.array([n, args.copies, args.seed, args.kind == "collages"], np.float64)
    if args.keep and marker.exists():
        kept = np.load(marker)
        if np.array_equal(kept["settings"], settings):
            return kept["source"], kept["boxes"]
    shutil.rmtree(path, ignore_errors=True)
    source, boxes = make_set(path, n, args.copies, args.seed, args.kind)
    if args.keep:
        np.savez(path / "set.tmp.npz", settings=settings, source=source, boxes=boxes)
        (path / "set.tmp.npz").rename(marker)
    return source, boxes


def box_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of two arrays of crop boxes; 0 across photos."""
    top, left = np.maximum(a[:, 1], b[:, 1]), np.maximum(a[:, 2], b[:, 2])
    bottom = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    right = np.minimum(a[:, 2] + a[:, 3], b[:, 2] + b[:, 3])
    inter = np.clip(bottom - top, 0, None) * np.clip(right - left, 0, None)
    union = a[:, 3] ** 2 + b[:, 3] ** 2 - inter
    return np.where(a[:, 0] == b[:, 0], inter / union, 0.0)


def child(src: str, out: str) -> None:
    """Run dedup at its defaults, sampling this process's anonymous memory."""
    from dcgan_data.dedup import stage as dd

    peak = [0]

    def sample() -> None:
        while True:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("RssAnon:"):
                    peak[0] = max(peak[0], int(line.split()[1]) * 1024)
            time.sleep(0.2)

    threading.Thread(target=sample, daemon=True).start()
    start = time.perf_counter()
    report = dd.dedup(src, out, dry_run=True)
    print(json.dumps({"seconds": time.perf_counter() - start, "peak_anon_bytes": peak[0],
                      "timings_s": report["timings_s"], "grouping": report["grouping"],
                      "removed": report["removed"], "largest_groups":
                      report["largest_groups"][:3]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 300_000])
    parser.add_argument("--copies", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kind", choices=["crops", "collages"], default="crops",
                        help="crops: one crop a row (crops of the few sample photos overlap "
                             "more as N grows); collages: 3x3 tiles a row (rows unrelated "
                             "unless planted copies)")
    parser.add_argument("--keep", action="store_true",
                        help="keep each set, and reuse one kept by an earlier run with the "
                             "same rows, kind, copies and seed")
    parser.add_argument("--make-only", action="store_true",
                        help="make (and keep) the sets, run nothing")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child)
    if args.make_only:
        args.keep = True
        for n in args.rows:
            made_set(OUT / f"src_{args.kind}_{n}", n, args)
        return
    from dcgan_data.dedup.write import read_kept_as

    results = []
    for n in args.rows:
        src, out = OUT / f"src_{args.kind}_{n}", OUT / f"out_{args.kind}_{n}"
        shutil.rmtree(out, ignore_errors=True)
        source, boxes = made_set(src, n, args)
        uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        run = subprocess.run([sys.executable, __file__, "--child", str(src), str(out)],
                             stdout=subprocess.PIPE, text=True, check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_seconds = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        measured = json.loads(run.stdout.strip().splitlines()[-1])
        kept_as = read_kept_as(out, [f"r{j:08d}" for j in range(n)])
        removed = np.flatnonzero(kept_as != np.arange(n))
        planted_right = int((source[removed] == source[kept_as[removed]]).sum())
        other = removed[source[removed] != source[kept_as[removed]]]
        overlap = box_overlap(boxes[source[other]], boxes[source[kept_as[other]]])
        result = {"rows": n, "kind": args.kind, "uptime": uptime, **measured,
                  "cpu_seconds": round(cpu_seconds, 1),
                  "planted_copies": int((source != np.arange(n)).sum()),
                  "removed_share": round(len(removed) / n, 5),
                  "removed_planted_pairs": planted_right,
                  "precision": round(planted_right / max(1, len(removed)), 4),
                  "removed_other": len(removed) - planted_right,
                  "removed_other_share": round((len(removed) - planted_right) / n, 5),
                  "removed_other_overlapping_crops": {
                      f"iou>={t}": int((overlap >= t).sum()) for t in (0.5, 0.7, 0.9)},
                  "removed_other_same_photo": int((overlap > 0).sum()),
                  "planted_recall": round(planted_right / max(1, (source != np.arange(n)).sum()),
                                          4)}
        results.append(result)
        print(json.dumps(result), flush=True)
        if not args.keep:
            shutil.rmtree(src, ignore_errors=True)
        (OUT / f"results_{args.kind}.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
