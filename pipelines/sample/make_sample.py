"""Build the bundled LSUN-like sample: distinct 256px crops of real photos, near-duplicate
copies of some of them, and a few broken values, packed as an LSUN-format LMDB.

    python pipelines/sample/make_sample.py OUT

writes OUT/sample_lmdb (key = SHA-1 hex of the value, JPEG or WebP bytes, as LSUN),
OUT/duplicates_truth.csv (key,duplicate_of,transform: every planted copy and its original)
and OUT/bad_keys.csv (key,kind: values that ingest must skip and name).
The same seed gives the same bytes.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
from pathlib import Path

import lmdb
import numpy as np

from dcgan_data.core.images import decode_image, encode_image
from dcgan_data.testing.neardup import TRANSFORM_NAMES, cut, distinct_crops, near_duplicate

HERE = Path(__file__).resolve().parent


def build(out: Path, per_photo: int, dup_fraction: float, size: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    photos = [decode_image(p.read_bytes())[0] for p in sorted((HERE / "photos").glob("*.jpg"))]
    crops = distinct_crops([p.shape[:2] for p in photos], per_photo, rng)
    values: dict[bytes, bytes] = {}
    truth, bad = [], []

    def put(value: bytes) -> str:
        key = hashlib.sha1(value).hexdigest()
        values[key.encode()] = value
        return key

    for crop in crops:
        photo = photos[crop.photo]
        original = put(encode_image(cut(photo, crop, size), "jpeg", 90))
        if rng.random() < dup_fraction:
            for transform in rng.choice(TRANSFORM_NAMES, int(rng.integers(1, 3)), replace=False):
                copy = near_duplicate(photo, crop, size, str(transform), rng)
                fmt = "webp" if transform == "webp_q80" else "jpeg"
                # the transform already applied its own encoding loss; store it losslessly-ish
                key = put(encode_image(copy, fmt, 80 if fmt == "webp" else 95))
                truth.append((key, original, str(transform)))
    good = encode_image(cut(photos[0], crops[0], size), "jpeg", 90)
    for kind, value in [("zero_length", b""), ("truncated_jpeg", good[: len(good) // 2]),
                        ("not_an_image", b"<html><body>404 Not Found</body></html>"),
                        ("corrupt_jpeg", good[:200] + bytes(rng.integers(0, 256, 3000,
                                                                        dtype=np.uint8)))]:
        bad.append((put(value), kind))

    lmdb_dir = out / "sample_lmdb"
    lmdb_dir.mkdir(parents=True, exist_ok=True)
    env = lmdb.open(str(lmdb_dir), map_size=1 << 32)
    with env.begin(write=True) as txn:
        for key, value in values.items():
            txn.put(key, value)
    env.close()
    with open(out / "duplicates_truth.csv", "w", newline="") as f:
        csv.writer(f).writerows([("key", "duplicate_of", "transform"), *truth])
    with open(out / "bad_keys.csv", "w", newline="") as f:
        csv.writer(f).writerows([("key", "kind"), *bad])
    return {"distinct": len(crops), "copies": len(truth), "bad": len(bad),
            "entries": len(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--per-photo", type=int, default=50, help="distinct crops per photo")
    parser.add_argument("--dup-fraction", type=float, default=0.15)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    counts = build(args.out, args.per_photo, args.dup_fraction, args.size, args.seed)
    print(f"sample: {counts['distinct']} distinct crops, {counts['copies']} near-duplicate "
          f"copies, {counts['bad']} broken values -> {args.out / 'sample_lmdb'}")


if __name__ == "__main__":
    main()
