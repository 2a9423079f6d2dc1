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
KINDS = ("crops", "collages", "dense")
PHASH_THRESHOLDS = (4, 8)


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


def dense_crop(photo: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, tuple]:
    """A random crop turned by up to 5 degrees, its brightness, contrast and saturation
    jittered by up to 15-20%: crops of one photo overlap but are distinct images. Returns the
    image and its box (y, x, side) before the turn."""
    import cv2
    from neardup_sets import random_crop

    crop, (y, x, side) = random_crop(photo, rng, (80, 80), 96)
    turn = cv2.getRotationMatrix2D((40, 40), float(rng.uniform(-5, 5)), 1.0)
    turn[:, 2] -= 8  # the 64x64 middle of the turned 80x80 crop
    image = cv2.warpAffine(crop, turn, (64, 64), borderMode=cv2.BORDER_REFLECT)
    f = image.astype(np.float32)
    grey = f.mean(axis=2, keepdims=True)
    f = grey + (f - grey) * rng.uniform(0.8, 1.2)
    f = (f - f.mean()) * rng.uniform(0.85, 1.15) + f.mean() * rng.uniform(0.85, 1.15)
    inner = side // 10
    return np.clip(f + 0.5, 0, 255).astype(np.uint8), (y + inner, x + inner, side - 2 * inner)


def shifted_jpeg(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A copy that looks the same by eye: moved by 1-2 pixels, re-encoded as JPEG q50."""
    import cv2

    dy = dx = 0
    while dy == dx == 0:
        dy, dx = (int(v) for v in rng.integers(-2, 3, 2))
    moved = cv2.warpAffine(image, np.float32([[1, 0, dx], [0, 1, dy]]), (64, 64),
                           borderMode=cv2.BORDER_REPLICATE)
    data = cv2.imencode(".jpg", moved, [cv2.IMWRITE_JPEG_QUALITY, 50])[1]
    return cv2.imdecode(data, cv2.IMREAD_UNCHANGED)


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
                original = originals[int(source[row])]
                rows[i] = shifted_jpeg(original, rng) if kind == "dense" else \
                    TRANSFORMS[str(rng.choice(edits))](original, rng)
                continue
            if kind == "collages":
                rows[i] = collage(photos, rng)
            elif kind == "dense":
                photo_index = int(rng.integers(len(photos)))
                rows[i], box = dense_crop(photos[photo_index], rng)
                boxes[row] = (photo_index, *box)
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
    settings = np.array([n, args.copies, args.seed, KINDS.index(args.kind)], np.float64)
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


def grouped_with_original(group: np.ndarray, source: np.ndarray) -> float:
    """The share of planted copies in their original's group (GROUP: a label per row)."""
    copies = np.flatnonzero(source != np.arange(len(source)))
    return round(float(np.mean(group[copies] == group[source[copies]])), 4)


def _phash_rows(args: tuple[str, int]) -> np.ndarray:
    import imagehash
    from PIL import Image

    from dcgan_data.core.shards import ShardSet

    rows = ShardSet(args[0]).shard(args[1])
    return np.stack([np.packbits(imagehash.phash(Image.fromarray(r)).hash.ravel())
                     for r in rows])


def phash_groups(src: Path, source: np.ndarray, processes: int = 2) -> dict:
    """imagehash's pHash of every row (PROCESSES processes, a shard each), grouped at each of
    PHASH_THRESHOLDS (components of pairs within the Hamming distance, found exactly by the
    multi-index of `grouping.radius_pairs`): seconds, removed share, copies grouped."""
    from multiprocessing import Pool

    from dcgan_data.core.shards import ShardSet
    from dcgan_data.dedup.grouping import connected, radius_pairs

    start = time.perf_counter()
    with Pool(processes) as pool:
        codes = np.concatenate(pool.map(_phash_rows, [(str(src), i) for i in
                                                      range(ShardSet(src).num_shards)]))
    result = {"hash_seconds": round(time.perf_counter() - start, 1)}
    for t in PHASH_THRESHOLDS:
        start = time.perf_counter()
        group = connected(len(codes), *radius_pairs(codes, t))
        result[f"<={t}"] = {"group_seconds": round(time.perf_counter() - start, 1),
                            "removed_share": round(1 - len(np.unique(group)) / len(codes), 5),
                            "grouped_with_original": grouped_with_original(group, source)}
    return result


def child(src: str, out: str, settings: str = "{}") -> None:
    """Run dedup at its defaults changed by SETTINGS (JSON of DedupOptions fields), sampling
    this process's anonymous memory."""
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
    report = dd.dedup(src, out, **{"dry_run": True, **json.loads(settings)})
    print(json.dumps({"seconds": time.perf_counter() - start, "peak_anon_bytes": peak[0],
                      "timings_s": report["timings_s"], "grouping": report["grouping"],
                      "removed": report["removed"], "largest_groups":
                      report["largest_groups"][:3]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 300_000])
    parser.add_argument("--copies", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kind", choices=KINDS, default="crops",
                        help="crops: one crop a row (crops of the few sample photos overlap "
                             "more as N grows); collages: 3x3 tiles a row (rows unrelated "
                             "unless planted copies); dense: crops turned and colour-jittered "
                             "a little (distinct look-alikes), copies moved 1-2 px and "
                             "re-encoded")
    parser.add_argument("--phash", action="store_true",
                        help="also time imagehash's pHash hashing and grouping the same rows "
                             f"at Hamming <= {PHASH_THRESHOLDS}, with its grouped shares")
    parser.add_argument("--keep", action="store_true",
                        help="keep each set, and reuse one kept by an earlier run with the "
                             "same rows, kind, copies and seed")
    parser.add_argument("--make-only", action="store_true",
                        help="make (and keep) the sets, run nothing")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=JSON",
                        help="run dedup with this option changed (a DedupOptions field and a "
                             "JSON value, e.g. self_fit=true); may be repeated")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
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
        settings = json.dumps({k: json.loads(v) for k, v in
                               (item.split("=", 1) for item in args.set)})
        run = subprocess.run([sys.executable, __file__, "--child", str(src), str(out), settings],
                             stdout=subprocess.PIPE, text=True, check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_seconds = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        measured = json.loads(run.stdout.strip().splitlines()[-1])
        kept_as = read_kept_as(out, [f"r{j:08d}" for j in range(n)])
        removed = np.flatnonzero(kept_as != np.arange(n))
        planted_right = int((source[removed] == source[kept_as[removed]]).sum())
        other = removed[source[removed] != source[kept_as[removed]]]
        overlap = box_overlap(boxes[source[other]], boxes[source[kept_as[other]]])
        result = {"rows": n, "kind": args.kind, "settings": json.loads(settings),
                  "uptime": uptime, **measured,
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
                                          4),
                  "grouped_with_original": grouped_with_original(kept_as, source)}
        if args.phash:
            result["phash"] = phash_groups(src, source)
        results.append(result)
        print(json.dumps(result), flush=True)
        if not args.keep:
            shutil.rmtree(src, ignore_errors=True)
        tag = "".join(f"_{k}" for k in json.loads(settings))
        (OUT / f"results_{args.kind}{tag}.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
