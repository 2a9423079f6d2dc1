"""Build the bundled face crawl: the sample face photos and their mirror images, 60 faces
of scikit-image's LFW subset set into photo backgrounds, planted duplicates, a few photos
without faces, to serve over HTTP, and the crawl list that names them.

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

from dcgan_data.core.images import decode_image, encode_image

HERE = Path(__file__).resolve().parent


def lfw_pictures(count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """LFW faces (25 px, grey) enlarged into 300x240 crops of the sample photos: web-sized
    pictures of distinct people, with faces large enough to keep."""
    from skimage.data import lfw_subset  # a dev dependency; ships its images offline

    photos = [decode_image(p.read_bytes())[0] for p in sorted((HERE / "photos").glob("*.jpg"))]
    backgrounds = [p for p in photos if p.shape[0] >= 240 and p.shape[1] >= 300]
    pictures = []
    for i, face in enumerate(lfw_subset()[:count]):
        grey = cv2.resize((face * 255).astype(np.uint8), (150, 150), interpolation=cv2.INTER_CUBIC)
        photo = backgrounds[i % len(backgrounds)]
        y = int(rng.integers(0, photo.shape[0] - 240 + 1))
        x = int(rng.integers(0, photo.shape[1] - 300 + 1))
        canvas = photo[y : y + 240, x : x + 300].copy()
        canvas[45:195, 75:225] = grey[:, :, None]
        pictures.append(canvas)
    return pictures


def build(out: Path, base_url: str, lfw_faces: int = 60) -> dict[str, int]:
    rng = np.random.default_rng(0)
    www = out / "www"
    www.mkdir(parents=True, exist_ok=True)
    lines = ["# bundled sample crawl: name<TAB>url, local paths, one dead link, one bad line"]
    planted = []

    def serve(name: str, data: bytes, label: str | None = None) -> str:
        (www / name).write_bytes(data)
        lines.append(f"{label}\t{base_url}/{name}" if label else f"{base_url}/{name}")
        return f"{base_url}/{name}"

    for photo in sorted((HERE / "faces").glob("*.jpg")):
        rgb, _ = decode_image(photo.read_bytes())
        original = serve(f"{photo.stem}.jpg", photo.read_bytes(), photo.stem)
        serve(f"{photo.stem}_mirror.jpg", encode_image(rgb[:, ::-1].copy(), "jpeg", 92),
              photo.stem)
        # a planted duplicate: the same picture again, re-encoded, under another URL
        copy = serve(f"{photo.stem}_copy.jpg", encode_image(rgb, "jpeg", 70), photo.stem)
        planted.append((copy, original))
    for i, picture in enumerate(lfw_pictures(lfw_faces, rng)):
        original = serve(f"lfw_{i:03d}.jpg", encode_image(picture, "jpeg", 90), f"lfw {i}")
        if i % 12 == 0:
            copy = serve(f"lfw_{i:03d}_copy.jpg", encode_image(picture, "jpeg", 75), f"lfw {i}")
            planted.append((copy, original))
    for photo in sorted((HERE / "photos").glob("*.jpg"))[:6]:  # pictures with no face
        serve(photo.name, photo.read_bytes())
    local = HERE / "faces" / "astronaut.jpg"  # a local path: the same picture as a URL's
    lines += ["", str(local), f"{base_url}/gone.jpg", "this line is neither a URL nor a path"]
    planted.append((str(local), f"{base_url}/astronaut.jpg"))
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
