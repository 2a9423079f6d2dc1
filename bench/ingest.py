"""Ingest throughput against the raw decode limit and a torchvision-style PIL loader.

    python bench/ingest.py [--images 30000] [--workers 2]

All three read the same LSUN-format LMDB of 256px JPEG crops of real photos, on the same
number of processes, in one run:
  ingest   `dcgan_data.ingest.stage.ingest`: LMDB read, header checks, decode, crop, resize,
           shard writing with checksums, report and contact sheet;
  raw      the physical limit: bare cv2.imdecode + center crop + INTER_AREA resize of the
           values already in memory, nothing else;
  raw/2    the same with the half-scale JPEG decode that ingest uses (a stricter limit);
  pil      what a per-item Dataset does: PIL open/convert, resize the short side, center crop.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import multiprocessing
import shutil
import time
from pathlib import Path

import cv2
import lmdb
import numpy as np
from PIL import Image

from dcgan_data.core.images import decode_image, encode_image
from dcgan_data.ingest.stage import ingest
from dcgan_data.testing.neardup import cut, distinct_crops

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "ingest"
SIZE = 64


def build_lmdb(path: Path, count: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    photos = [decode_image(p.read_bytes())[0]
              for p in sorted((ROOT / "pipelines/sample/photos").glob("*.jpg"))]
    crops = distinct_crops([p.shape[:2] for p in photos], 200, rng, max_iou=0.7)
    values = []
    for i in range(count):
        crop = crops[i % len(crops)]
        # a few pixels of brightness offset keep repeated crops' bytes distinct
        rgb = np.clip(cut(photos[crop.photo], crop, 256).astype(int) + i // len(crops), 0, 255)
        values.append(encode_image(rgb.astype(np.uint8), "jpeg", 90))
    env = lmdb.open(str(path), map_size=1 << 34)
    with env.begin(write=True) as txn:
        for value in values:
            txn.put(hashlib.sha1(value).hexdigest().encode(), value)
    env.close()
    return values


def raw_chunk(values: list[bytes], flag: int = cv2.IMREAD_COLOR) -> int:
    cv2.setNumThreads(1)
    for value in values:
        bgr = cv2.imdecode(np.frombuffer(value, np.uint8), flag)
        h, w = bgr.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        cv2.resize(bgr[top : top + side, left : left + side], (SIZE, SIZE),
                   interpolation=cv2.INTER_AREA)
    return len(values)


def raw_reduced_chunk(values: list[bytes]) -> int:
    return raw_chunk(values, cv2.IMREAD_REDUCED_COLOR_2)


def pil_item(value: bytes) -> np.ndarray:
    img = Image.open(io.BytesIO(value)).convert("RGB")
    scale = SIZE / min(img.size)
    img = img.resize((round(img.width * scale), round(img.height * scale)), Image.BILINEAR)
    left, top = (img.width - SIZE) // 2, (img.height - SIZE) // 2
    return np.asarray(img.crop((left, top, left + SIZE, top + SIZE)))


def timed_pool(fn, jobs, workers: int, chunksize: int = 1) -> float:
    with multiprocessing.get_context("forkserver").Pool(workers) as pool:
        pool.map(abs, range(workers))  # start the processes before the clock
        start = time.perf_counter()
        for _ in pool.imap_unordered(fn, jobs, chunksize=chunksize):
            pass
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=30000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    values = build_lmdb(OUT / "bench_lmdb", args.images)
    n = len(values)

    start = time.perf_counter()
    report = ingest(OUT / "bench_lmdb", OUT / "shards", size=SIZE, workers=args.workers,
                    rows_per_shard=4096)
    ingest_s = time.perf_counter() - start
    assert report["written"] == n, report

    chunks = [values[i : i + 256] for i in range(0, n, 256)]
    raw_s = timed_pool(raw_chunk, chunks, args.workers)
    raw2_s = timed_pool(raw_reduced_chunk, chunks, args.workers)
    pil_s = timed_pool(pil_item, values, args.workers, chunksize=1)

    rates = {"ingest": n / ingest_s, "raw": n / raw_s, "raw/2": n / raw2_s, "pil": n / pil_s}
    print(f"{n} images of 256px JPEG -> {SIZE}px, {args.workers} processes")
    for name, rate in rates.items():
        print(f"  {name:7s} {rate:8.0f} images/s")
    print(f"  ingest / raw limit = {rates['ingest'] / rates['raw']:.2f}x (target >= 0.85)")
    print(f"  ingest / raw/2 limit = {rates['ingest'] / rates['raw/2']:.2f}x")
    print(f"  ingest / PIL per-item = {rates['ingest'] / rates['pil']:.2f}x")


if __name__ == "__main__":
    main()
