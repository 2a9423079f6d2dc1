"""Held-out near-duplicate sets for `dcgan-data dedup` (issue 33), built only from photographs
that nothing in this project was fitted or tuned on.

    python tools/holdout_sets.py                 # the two DEV sets: augly-dev, albu-dev
    python tools/holdout_sets.py --final         # also augly-final, albu-final

Photos: PHOTOS below, from four Debian packages, each fetched as a pinned version with `apt-get
download` (after an `apt-get update` when the lists lack it) and unpacked with `dpkg-deb -x`
into bench/out/holdout/photos/; every file's SHA-256 is checked, so a set is the same on every
machine. Not used: the bundled sample photos (pipelines/sample/photos, which dedup's model was
fitted on), the face photos and scikit-image photos that tools/neardup_sets.py's held-out set
uses (looked at during tuning). The photos are split by a fixed rule (`split`) into DEV, for
development, and FINAL, kept untouched until the final figures.

Each set (`<edits>-<split>`) is a folder bench/out/holdout/<set>/images/ of JPEG files (q90,
as an LSUN value is stored; names in a seeded random order) and bench/out/holdout/<set>/
truth.csv with columns file, group, role (original|copy|negative), kind, photo:
* originals: distinct crops of the split's photos (any two share < 10% of the smaller's
  area), resized to 256 px;
* copies of some originals (group = the original's), made with AugLy's image functions
  (`augly` sets, 18 kinds) or with albumentations (`albu` sets, 23 kinds);
* hard negatives, each its own group: a crop sharing 30-60% of an original's area
  (`overlap`), the next crop along (`adjacent`), the plainest crops of the photos (`plain`),
  and the crop of another photo with the nearest 8x8 mean-colour layout to an original
  (`colour_layout`).
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from neardup_sets import augly_edits  # noqa: E402

from dcgan_data.core.files import write_csv  # noqa: E402
from dcgan_data.core.images import decode_image, encode_image, resize_square  # noqa: E402
from dcgan_data.testing.neardup import MIRROR  # noqa: E402

OUT = ROOT / "bench" / "out" / "holdout"
SIZE = 256
Edit = Callable[[np.ndarray, np.random.Generator], np.ndarray]

PACKAGES = {"lomiri-wallpapers-16.04": "20.04.0-2", "lomiri-wallpapers-20.04": "20.04.0-2",
            "plasma-workspace-wallpapers": "4:5.27.5-2", "opencv-doc": "4.6.0+dfsg-12"}
LOMIRI = "usr/share/backgrounds"
PLASMA = "usr/share/wallpapers"
OPENCV = "usr/share/doc/opencv-doc/examples"


@dataclass(frozen=True)
class Photo:
    name: str
    package: str
    path: str
    sha256: str  # first 16 hex digits
    licence: str


PHOTOS = [
    Photo("lomiri_bridge", "lomiri-wallpapers-16.04", f"{LOMIRI}/Bridge_by_Sander_Klootwijk.jpg",
          "bd86b081f9975e2b", "CC-BY-SA-4.0 (Sander Klootwijk)"),
    Photo("lomiri_dragonfly", "lomiri-wallpapers-16.04", f"{LOMIRI}/Dragonfly_by_Bolly.jpg",
          "af5af17841009732", "CC-BY-SA-4.0 (Bolly)"),
    Photo("lomiri_fig", "lomiri-wallpapers-16.04", f"{LOMIRI}/Picture_0B_by_freespace.jpg",
          "c8c0ab18e48d9e04", "CC-BY-4.0 (Trevor 'Freespace')"),
    Photo("lomiri_brushes", "lomiri-wallpapers-16.04", f"{LOMIRI}/Picture_1A_by_freespace.jpg",
          "89e86af38d04daae", "CC-BY-4.0 (Trevor 'Freespace')"),
    Photo("lomiri_wine", "lomiri-wallpapers-16.04", f"{LOMIRI}/Wine_by_Jakkub_Mede.jpg",
          "d2e96e6d4da40dd8", "CC-BY-4.0 (Jakub Mede)"),
    Photo("lomiri_aitzgorri", "lomiri-wallpapers-16.04",
          f"{LOMIRI}/aitzgorri_by_Aitzol_Berasategi.jpg", "66268e7b48f8854d",
          "CC-BY-4.0 (Aitzol Berasategi)"),
    Photo("lomiri_free", "lomiri-wallpapers-16.04", f"{LOMIRI}/free_by_Peter_Nerlich.jpg",
          "85a5453c2fed514c", "CC-BY-SA-4.0 (Peter Nerlich)"),
    Photo("lomiri_friends", "lomiri-wallpapers-16.04",
          f"{LOMIRI}/friends_by_Aitzol_Berasategi.jpg", "cc40e313c74e421e",
          "CC-BY-4.0 (Aitzol Berasategi)"),
    Photo("lomiri_greentock", "lomiri-wallpapers-16.04", f"{LOMIRI}/greentock_by_Peter_Nerlich.jpg",
          "e7b20e2db9dcd6e2", "CC-BY-SA-4.0 (Peter Nerlich)"),
    Photo("lomiri_life", "lomiri-wallpapers-16.04", f"{LOMIRI}/life_by_Aitzol_Berasategi.jpg",
          "4c119350ead80201", "CC-BY-4.0 (Aitzol Berasategi)"),
    Photo("lomiri_picosdeeuropa", "lomiri-wallpapers-16.04",
          f"{LOMIRI}/picosdeeuropa_by_Aitzol_Berasategi.jpg", "414d0072b2f6f2c5",
          "CC-BY-4.0 (Aitzol Berasategi)"),
    Photo("lomiri_seeding", "lomiri-wallpapers-16.04",
          f"{LOMIRI}/seeding_by_Clements_Engelhardt.jpg", "a5634d1ab5e41a35",
          "CC0-1.0 (Clemens Engelhardt)"),
    Photo("lomiri_sunset", "lomiri-wallpapers-16.04", f"{LOMIRI}/sunset_by_Aitzol_Berasategi.jpg",
          "474dab6a4b9f94dc", "CC-BY-4.0 (Aitzol Berasategi)"),
    Photo("lomiri_kleiber", "lomiri-wallpapers-20.04", f"{LOMIRI}/Kleiber_by_Lukas_Baubkus.jpg",
          "6572410c09f4492c", "CC-BY-SA-3.0 (Lukas Baubkus)"),
    *(Photo(f"plasma_{name}", "plasma-workspace-wallpapers",
            f"{PLASMA}/{name}/contents/images/{file}", digest, "GPL-2+ (KDE Visual Design Group)")
      for name, file, digest in [
          ("BytheWater", "2560x1600.jpg", "c272434ef39f2abf"),
          ("ColdRipple", "2560x1600.jpg", "05bef6722fc0ed81"),
          ("ColorfulCups", "2560x1600.jpg", "6e0f3a72feb5a4a9"),
          ("DarkestHour", "2560x1600.jpg", "8e3703fae3a3c217"),
          ("EveningGlow", "2560x1600.jpg", "586682dcb362b9f6"),
          ("FallenLeaf", "2560x1600.jpg", "95603a6560c7e8d5"),
          ("Grey", "2560x1600.jpg", "88c31d8944b7e693"),
          ("Kite", "2560x1600.jpg", "bdca288ce296a981"),
          ("OneStandsOut", "2560x1600.jpg", "cb507baf1dafdcae"),
          ("Path", "2560x1600.jpg", "7477457d7f17b736"),
          ("Volna", "5120x2880.jpg", "abc30b4fc6f6a83b"),
          ("summer_1am", "2560x1600.jpg", "c868b50789591dd4")]),
    *(Photo(f"opencv_{Path(path).stem}", "opencv-doc", f"{OPENCV}/{path}", digest,
            "BSD-3-Clause (OpenCV samples)")
      for path, digest in [
          ("alphamat/input_images/plant.jpg", "9928b44eee0d1d7a"),
          ("text/scenetext01.jpg", "7f3041a7019ab4d3"),
          ("text/scenetext02.jpg", "d4295bff9f348012"),
          ("text/scenetext03.jpg", "cadf4a3d29a7ba6f"),
          ("text/scenetext04.jpg", "28e08d142a04f92f"),
          ("text/scenetext05.jpg", "63985ac1a9989a83"),
          ("text/scenetext06.jpg", "e4d64f10bbfb27b2"),
          ("data/sudoku.png", "000cf81b7ce79501"), ("data/chicky_512.png", "4d2cf040de084fd3"),
          ("data/rubberwhale1.png", "eb312435369dac9e"), ("data/graf1.png", "1504b769303c7bde"),
          ("data/box_in_scene.png", "8b0225ff76244a42"), ("hfs/data/000.jpg", "e4fec7e2e67a8a42"),
          ("data/left01.jpg", "9621899098adffa1"), ("data/stuff.jpg", "21cd00afbdd0727f")]),
]
# issue 33 already describes crops of these (they were in the sets its figures came from), so
# they go to DEV whatever the rule says
SEEN = {"plasma_Grey", "plasma_ColdRipple", "plasma_BytheWater"}
EDIT_SETS = ("augly", "albu")
# per set: images wanted in all, and hard negatives of each kind
TARGET_IMAGES = {"augly": 1900, "albu": 1700}
NEGATIVES_PER_KIND = {"augly": 50, "albu": 100}
NEGATIVE_KINDS = ("overlap", "adjacent", "plain", "colour_layout")
MAX_SHARED = 0.10  # area two originals may share, as a share of the smaller
CROPS_PER_PHOTO = {"augly": 40, "albu": 24}  # the albu set gives its room to negatives


def split(photo: Photo) -> str:
    """DEV or FINAL: the photos issue 33 shows go to DEV; the others alternate in PHOTOS'
    order (FINAL first), so each split draws on every package."""
    if photo.name in SEEN:
        return "dev"
    rest = [p.name for p in PHOTOS if p.name not in SEEN]
    return "final" if rest.index(photo.name) % 2 == 0 else "dev"


def fetch_photos(cache: Path) -> dict[str, np.ndarray]:
    """Every photo of PHOTOS as RGB, from the pinned packages (downloaded and unpacked once)."""
    for package, version in PACKAGES.items():
        root = cache / package
        if (root / ".unpacked").exists():
            continue
        with tempfile.TemporaryDirectory() as tmp:
            download = ["apt-get", "download", f"{package}={version}"]
            got = subprocess.run(download, cwd=tmp, capture_output=True, text=True)
            if got.returncode:  # a fresh machine's package lists may be missing or stale
                subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
                got = subprocess.run(download, cwd=tmp, capture_output=True, text=True)
            if got.returncode:
                sys.exit(f"{' '.join(download)} failed: "
                         f"{(got.stderr.strip().splitlines() or [''])[-1]}")
            deb = next(Path(tmp).glob("*.deb"))
            root.mkdir(parents=True, exist_ok=True)
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
        (root / ".unpacked").touch()
    photos = {}
    for photo in PHOTOS:
        data = (cache / photo.package / photo.path).read_bytes()
        if hashlib.sha256(data).hexdigest()[:16] != photo.sha256:
            sys.exit(f"{photo.package}/{photo.path}: not the file these sets were built from "
                     f"(SHA-256 differs)")
        photos[photo.name] = decode_image(data)[0]
    return photos


Box = tuple[int, int, int]  # y, x, side in the photo


def shared(a: Box, b: Box) -> float:
    """The area two boxes share, as a share of the smaller one's."""
    dy = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    dx = max(0, min(a[1] + a[2], b[1] + b[2]) - max(a[1], b[1]))
    return dy * dx / min(a[2], b[2]) ** 2


def random_box(shape: tuple[int, ...], rng: np.random.Generator) -> Box:
    short = min(shape[:2])
    side = int(rng.integers(max(64, short // 10), max(65, short // 3) + 1))
    return (int(rng.integers(0, shape[0] - side + 1)), int(rng.integers(0, shape[1] - side + 1)),
            side)


def place_originals(shape: tuple[int, ...], count: int, rng: np.random.Generator) -> list[Box]:
    chosen: list[Box] = []
    for _ in range(count * 40):
        if len(chosen) == count:
            break
        box = random_box(shape, rng)
        if all(shared(box, other) < MAX_SHARED for other in chosen):
            chosen.append(box)
    return chosen


def cut(photo: np.ndarray, box: Box) -> np.ndarray:
    y, x, side = box
    return resize_square(photo[y : y + side, x : x + side], SIZE)


def texture(rgb: np.ndarray) -> float:
    grey = cv2.cvtColor(cv2.resize(rgb, (64, 64), interpolation=cv2.INTER_AREA),
                        cv2.COLOR_RGB2GRAY)
    return float(np.abs(cv2.Laplacian(grey.astype(np.float32), cv2.CV_32F)).mean())


def layout(rgb: np.ndarray) -> np.ndarray:
    return cv2.resize(rgb, (8, 8), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()


def clear_of(box: Box, shape: tuple[int, ...], taken: list[Box], limit: float,
             base: Box | None = None) -> bool:
    """Inside the photo, and sharing less than `limit` with every box taken but `base`."""
    y, x, side = box
    return (0 <= y and 0 <= x and y + side <= shape[0] and x + side <= shape[1]
            and all(shared(box, other) < limit for other in taken if other != base))


def hard_negatives(photos: dict[str, np.ndarray], originals: list[tuple[str, Box]], count: int,
                   rng: np.random.Generator) -> list[tuple[str, str, Box]]:
    """Up to `count` (kind, photo, box) of each negative kind. An `overlap` shares 30-60% of
    its original's area, an `adjacent` crop touches it; neither shares 60% or more with any
    other crop taken. `plain` and `colour_layout` crops share under 30% with every crop taken."""
    taken: dict[str, list[Box]] = {name: [] for name in photos}
    for name, box in originals:
        taken[name].append(box)
    out: list[tuple[str, str, Box]] = []

    def take(kind: str, name: str, box: Box) -> None:
        taken[name].append(box)
        out.append((kind, name, box))

    for kind in ("overlap", "adjacent"):
        made = 0
        for i in rng.permutation(len(originals)):
            name, (y, x, side) = originals[i]
            step = int(round(side * (1 - rng.uniform(0.3, 0.6)))) if kind == "overlap" else side
            for dy, dx in rng.permutation([(0, step), (0, -step), (step, 0), (-step, 0)]):
                box = (y + int(dy), x + int(dx), side)
                if clear_of(box, photos[name].shape, taken[name], 0.6, base=(y, x, side)):
                    take(kind, name, box)
                    made += 1
                    break
            if made == count:
                break
    # crops clear of every crop taken so far, from all the photos
    pool = [(name, box) for name, photo in photos.items()
            for box in (random_box(photo.shape, rng) for _ in range(1000))
            if clear_of(box, photo.shape, taken[name], 0.3)]
    plainest = sorted(pool, key=lambda item: texture(cut(photos[item[0]], item[1])))
    made = 0
    for name, box in plainest:
        if made == count:
            break
        if clear_of(box, photos[name].shape, taken[name], 0.3):
            take("plain", name, box)
            made += 1
    layouts = np.stack([layout(cut(photos[name], box)) for name, box in pool])
    made = 0
    for i in rng.permutation(len(originals)):
        if made == count:
            break
        name, box = originals[i]
        distance = np.linalg.norm(layouts - layout(cut(photos[name], box)), axis=1)
        for j in np.argsort(distance):
            other, candidate = pool[j]
            if other != name and clear_of(candidate, photos[other].shape, taken[other], 0.3):
                take("colour_layout", other, candidate)
                made += 1
                break
    return out


def augly_set_edits() -> dict[str, Edit]:
    """tools/neardup_sets.py's AugLy edits (but the mirror) and five more AugLy functions."""
    import augly.image as augly
    from PIL import Image, ImageDraw, ImageFont

    def getsize_multiline(font: ImageFont.FreeTypeFont, text: str) -> tuple[int, int]:
        left, top, right, bottom = ImageDraw.Draw(Image.new("L", (1, 1))).multiline_textbbox(
            (0, 0), text, font=font)
        return right - left, bottom - top

    # AugLy 1.0's meme_format calls a font method that Pillow 10 removed
    if not hasattr(ImageFont.FreeTypeFont, "getsize_multiline"):
        ImageFont.FreeTypeFont.getsize_multiline = getsize_multiline
    edits = {k: v for k, v in augly_edits().items() if k != MIRROR}

    def pil(edit: Callable[[Image.Image, np.random.Generator], Image.Image]) -> Edit:
        return lambda rgb, rng: np.asarray(edit(Image.fromarray(rgb), rng).convert("RGB"))

    def meme(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        return augly.meme_format(image, text=str(rng.choice(["LOL", "WOW", "OMG", "MOOD", "YES"])),
                                 caption_height=int(rng.integers(40, 80)))

    return {**edits,
            "meme": pil(meme),
            "color_jitter": pil(lambda im, r: augly.color_jitter(
                im, brightness_factor=float(r.uniform(0.8, 1.2)),
                contrast_factor=float(r.uniform(0.8, 1.2)),
                saturation_factor=float(r.uniform(0.6, 1.5)))),
            "pixelization": pil(lambda im, r: augly.pixelization(im, ratio=float(r.uniform(0.3,
                                                                                           0.6)))),
            "scale": pil(lambda im, r: augly.scale(im, factor=float(r.uniform(0.4, 0.8)))),
            "sharpen": pil(lambda im, r: augly.sharpen(im, factor=float(r.uniform(2, 8))))}


def albu_edits() -> dict[str, Edit]:
    """albumentations' transforms, one per kind, with their parameters drawn per copy."""
    import albumentations as A

    def albu(make: Callable[[np.random.Generator], A.BasicTransform]) -> Edit:
        return lambda rgb, rng: A.Compose([make(rng)], seed=int(rng.integers(1 << 31)))(
            image=rgb)["image"]

    def sign(rng: np.random.Generator) -> int:
        return int(rng.choice([-1, 1]))

    def affine(rng: np.random.Generator) -> A.BasicTransform:
        scale = float(rng.uniform(0.85, 1.15))
        shift = {axis: float(rng.uniform(-0.05, 0.05)) for axis in "xy"}
        angle = float(rng.uniform(2, 8)) * sign(rng)
        return A.Affine(scale=(scale, scale), translate_percent={k: (v, v) for k, v in
                                                                 shift.items()},
                        rotate=(angle, angle), p=1)

    def caption(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = rgb.copy()
        height = int(rng.integers(SIZE // 7, SIZE // 4))
        top = 0 if rng.random() < 0.5 else SIZE - height
        out[top : top + height] = rng.integers(0, 256, 3)
        word = str(rng.choice(["SALE", "HOLIDAY", "2024", "NEW!", "photo", "#tbt"]))
        ink = tuple(int(255 - c) for c in out[top, 0])
        cv2.putText(out, word, (int(rng.integers(4, 40)), top + height * 3 // 4),
                    cv2.FONT_HERSHEY_SIMPLEX, height / 40, ink, 2, cv2.LINE_AA)
        return out

    def stretch(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return cv2.resize(rgb, (int(SIZE * 1.2), SIZE), interpolation=cv2.INTER_AREA)

    edits: dict[str, Edit] = {
        "perspective": albu(lambda r: A.Perspective(scale=(0.05, 0.1), p=1)),
        "affine": albu(affine),
        "clahe": albu(lambda r: A.CLAHE(clip_limit=(2, 4), p=1)),
        "shadow": albu(lambda r: A.RandomShadow(shadow_roi=(0, 0, 1, 1), p=1)),
        "sun_flare": albu(lambda r: A.RandomSunFlare(src_radius=int(r.integers(60, 120)), p=1)),
        "stretch": stretch,
        "gamma": albu(lambda r: A.RandomGamma(gamma_limit=(60, 80) if r.random() < 0.5
                                              else (125, 160), p=1)),
        "hue_saturation": albu(lambda r: A.HueSaturationValue(p=1)),
        "sepia": albu(lambda r: A.ToSepia(p=1)),
        "posterize": albu(lambda r: A.Posterize(num_bits=(3, 4), p=1)),
        "jpeg": albu(lambda r: A.ImageCompression(quality_range=(10, 30), p=1)),
        "downscale": albu(lambda r: A.Downscale(scale_range=(0.25, 0.5), p=1)),
        "gaussian_blur": albu(lambda r: A.GaussianBlur(blur_limit=(5, 9), sigma_limit=(1, 2.5),
                                                       p=1)),
        "motion_blur": albu(lambda r: A.MotionBlur(blur_limit=(7, 13), p=1)),
        "gauss_noise": albu(lambda r: A.GaussNoise(std_range=(0.04, 0.1), p=1)),
        "holes": albu(lambda r: A.CoarseDropout(num_holes_range=(2, 6),
                                                hole_height_range=(0.05, 0.15),
                                                hole_width_range=(0.05, 0.15), p=1)),
        "lens": albu(lambda r: A.OpticalDistortion(distort_limit=float(r.uniform(0.1, 0.3))
                                                   * sign(r), p=1)),
        "gray": albu(lambda r: A.ToGray(p=1)),
        "brightness_contrast": albu(lambda r: A.RandomBrightnessContrast(
            brightness_limit=0.25, contrast_limit=0.25, p=1)),
        "equalize": albu(lambda r: A.Equalize(p=1)),
        "border": albu(lambda r: A.Pad(padding=int(r.integers(13, 39)),
                                       fill=tuple(int(c) for c in r.integers(0, 256, 3)), p=1)),
        "caption": caption,
    }
    singles = list(edits)

    def two(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        first, second = rng.choice(singles, 2, replace=False)
        return edits[str(second)](edits[str(first)](rgb, rng), rng)

    return {**edits, "two_edits": two}


def seed_of(name: str) -> int:
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)


def build(edit_set: str, split_name: str, photos: dict[str, np.ndarray], out: Path) -> dict:
    """Write the set `<edit_set>-<split_name>` into `out` (images/ and truth.csv)."""
    name = f"{edit_set}-{split_name}"
    rng = np.random.default_rng(seed_of(name))
    chosen = {p.name: photos[p.name] for p in PHOTOS if split(p) == split_name}
    originals = [(photo, box) for photo, rgb in chosen.items()
                 for box in place_originals(rgb.shape, CROPS_PER_PHOTO[edit_set], rng)]
    negatives = hard_negatives(chosen, originals, NEGATIVES_PER_KIND[edit_set], rng)
    edits = augly_set_edits() if edit_set == "augly" else albu_edits()
    copies = max(0, TARGET_IMAGES[edit_set] - len(originals) - len(negatives))
    per_original = rng.multinomial(copies, np.full(len(originals), 1 / len(originals)))
    names = iter(rng.permutation(len(originals) + copies + len(negatives)))
    work = out.with_name(out.name + ".partial")
    subprocess.run(["rm", "-rf", str(work)], check=True)
    (work / "images").mkdir(parents=True)
    truth = []

    def save(rgb: np.ndarray, group: int, role: str, kind: str, photo: str) -> None:
        file = f"{next(names):05d}.jpg"
        (work / "images" / file).write_bytes(encode_image(np.ascontiguousarray(rgb), "jpeg", 90))
        truth.append((file, group, role, kind, photo))

    for group, ((photo, box), count) in enumerate(zip(originals, per_original, strict=True)):
        original = cut(chosen[photo], box)
        save(original, group, "original", "original", photo)
        for kind in rng.choice(list(edits), min(int(count), len(edits)), replace=False):
            save(edits[str(kind)](original, rng), group, "copy", str(kind), photo)
    for group, (kind, photo, box) in enumerate(negatives, start=len(originals)):
        save(cut(chosen[photo], box), group, "negative", kind, photo)
    write_csv(work / "truth.csv", ["file", "group", "role", "kind", "photo"], sorted(truth))
    subprocess.run(["rm", "-rf", str(out)], check=True)
    work.rename(out)
    return {"photos": len(chosen), "originals": len(originals), "images": len(truth),
            "copies": sum(r[2] == "copy" for r in truth),
            "negatives": {k: sum(r[3] == k for r in truth) for k in NEGATIVE_KINDS}}


def ensure_set(name: str) -> Path:
    """The folder of the set `name` (e.g. "albu-dev"), built first if it is not there."""
    edit_set, split_name = name.split("-")
    if edit_set not in EDIT_SETS or split_name not in ("dev", "final"):
        sys.exit(f"no held-out set called {name!r}")
    if not (OUT / name / "truth.csv").exists():
        report = build(edit_set, split_name, fetch_photos(OUT / "photos"), OUT / name)
        print(f"{name}: {report}", flush=True)
    return OUT / name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--final", action="store_true",
                        help="also build the FINAL sets (kept for the final figures)")
    parser.add_argument("--sets", nargs="*", choices=EDIT_SETS, default=list(EDIT_SETS))
    args = parser.parse_args()
    photos = fetch_photos(OUT / "photos")
    for split_name in ("dev", "final") if args.final else ("dev",):
        for edit_set in args.sets:
            name = f"{edit_set}-{split_name}"
            print(f"{name}: {build(edit_set, split_name, photos, OUT / name)}", flush=True)


if __name__ == "__main__":
    main()
