"""Build the bundled face crawl: variants of the sample face photos to serve over HTTP,
planted duplicates, a few photos without faces, and the crawl list that names them.

    python pipelines/sample/make_crawl.py OUT --base-url http://127.0.0.1:8754

writes OUT/www/ (the files a local server will serve), OUT/crawl.txt (name<TAB>url lines,
local paths, a comment, a dead URL and a malformed line) and OUT/planted_duplicates.csv
(url,duplicate_of: crawl items whose faces repeat another item's).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import cv2
import numpy as np

from dcgan_data.images import decode_image, encode_image

HERE = Path(__file__).resolve().parent


def variants(rgb: np.ndarray) -> dict[str, np.ndarray]:
    """Distinct views of one photo: each gives faces of another size or orientation."""
    h, w = rgb.shape[:2]

    def scaled(f: float) -> np.ndarray:
        return cv2.resize(rgb, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)

    return {"orig": rgb, "mirror": rgb[:, ::-1].copy(), "s80": scaled(0.8),
            "mirror_s70": scaled(0.7)[:, ::-1].copy()}


def build(out: Path, base_url: str) -> dict[str, int]:
    www = out / "www"
    www.mkdir(parents=True, exist_ok=True)
    lines = ["# bundled sample crawl: name<TAB>url, local paths, one dead link, one bad line"]
    planted = []
    for photo in sorted((HERE / "faces").glob("*.jpg")):
        rgb, _ = decode_image(photo.read_bytes())
        for tag, image in variants(rgb).items():
            name = f"{photo.stem}_{tag}.jpg"
            (www / name).write_bytes(encode_image(image, "jpeg", 92))
            lines.append(f"{photo.stem}\t{base_url}/{name}")
        # planted duplicates: the same picture again, re-encoded, under another URL
        copy = f"{photo.stem}_copy_q70.jpg"
        (www / copy).write_bytes(encode_image(rgb, "jpeg", 70))
        lines.append(f"{photo.stem}\t{base_url}/{copy}")
        planted.append((f"{base_url}/{copy}", f"{base_url}/{photo.stem}_orig.jpg"))
    for photo in sorted((HERE / "photos").glob("*.jpg"))[:6]:  # pictures with no face
        (www / photo.name).write_bytes(photo.read_bytes())
        lines.append(f"{base_url}/{photo.name}")
    lines += ["", str(HERE / "faces" / "astronaut.jpg"),  # a local path, same as a URL's photo
              f"{base_url}/gone.jpg", "this line is neither a URL nor a path"]
    planted.append((str(HERE / "faces" / "astronaut.jpg"), f"{base_url}/astronaut_orig.jpg"))
    (out / "crawl.txt").write_text("\n".join(lines) + "\n")
    with open(out / "planted_duplicates.csv", "w", newline="") as f:
        csv.writer(f).writerows([("url", "duplicate_of"), *planted])
    return {"lines": len(lines), "planted": len(planted)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--base-url", required=True)
    args = parser.parse_args()
    counts = build(args.out, args.base_url.rstrip("/"))
    print(f"crawl: {counts['lines']} lines, {counts['planted']} planted duplicates -> "
          f"{args.out / 'crawl.txt'}")


if __name__ == "__main__":
    main()
