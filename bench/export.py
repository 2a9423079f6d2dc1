"""Export throughput of each format against the shards' read speed and the PNG encode limit.

    python bench/export.py [--images 5000] [--repeats 2]

One shard directory of 64px crops of real photos is read and exported in one run:
  read        ShardSet.load of every row (memory map -> memory): the speed of the source;
  png         encode_png of every row already in memory on one thread, nothing written: the
              limit of a lossless export on one core (export encodes on one thread per core);
  folder, webdataset, stylegan, hf
              `dcgan_data.export.stage.export` end to end (encoding, writing, state, report).
Rates are images/s and MB/s of output written; each is the best and worst of --repeats runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

from dcgan_data.core.images import encode_png
from dcgan_data.core.shards import ShardSet
from dcgan_data.export.stage import FORMATS, export
from dcgan_data.testing.photos import random_crops, write_shards

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "export"
SIZE = 64


def build_shards(path: Path, count: int) -> ShardSet:
    rows = random_crops(count, SIZE, lambda rng, h, w: min(h, w) // 2)
    write_shards(path, rows, [f"img{i:07d}" for i in range(count)], rows_per_shard=2048,
                 params={})
    return ShardSet(path)


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    shards = build_shards(OUT / "shards", args.images)
    import datasets  # noqa: F401  imported before the clocks: a one-off of several seconds
    import webdataset  # noqa: F401
    n, raw_mb = len(shards), len(shards) * SIZE * SIZE * 3 / 1e6
    rates: dict[str, list[tuple[float, float]]] = {}

    for _ in range(args.repeats):
        fresh = ShardSet(OUT / "shards")
        start = time.perf_counter()
        rows = fresh.load()
        seconds = time.perf_counter() - start
        rates.setdefault("read", []).append((n / seconds, raw_mb / seconds))
        start = time.perf_counter()
        encoded = sum(len(encode_png(row)) for row in rows)
        seconds = time.perf_counter() - start
        rates.setdefault("png", []).append((n / seconds, encoded / 1e6 / seconds))
        for fmt in FORMATS:
            dest = OUT / fmt
            shutil.rmtree(dest, ignore_errors=True)
            start = time.perf_counter()
            report = export(OUT / "shards", dest, fmt, rows_per_part=2048)
            seconds = time.perf_counter() - start
            assert report["rows"] == n
            rates.setdefault(fmt, []).append((n / seconds, dir_bytes(dest) / 1e6 / seconds))

    print(f"{n} rows of {SIZE}px ({raw_mb:.0f} MB raw), {os.cpu_count()} encoding threads, "
          f"{args.repeats} repeats; load average {os.getloadavg()[0]:.1f}")
    best_png = max(r[0] for r in rates["png"])
    best_read = max(r[0] for r in rates["read"])
    for name, runs in rates.items():
        ips, mbs = sorted(r[0] for r in runs), sorted(r[1] for r in runs)
        line = (f"  {name:10s} {ips[0]:9.0f}-{ips[-1]:.0f} images/s  "
                f"{mbs[0]:7.1f}-{mbs[-1]:.1f} MB/s")
        if name in FORMATS:
            line += (f"  best / 1-core png limit {ips[-1] / best_png:.2f}x, "
                     f"/ read {ips[-1] / best_read:.4f}x")
        print(line)


if __name__ == "__main__":
    main()
