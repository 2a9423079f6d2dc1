"""The audit's inputs: the images to check (a run's samples, a folder, shards), the training
shards, and the calibration images (training rows, each measured without itself, or real
images the generator never saw)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from dcgan_data.audit.calibration import calibration_rows
from dcgan_data.audit.options import Holdout
from dcgan_data.core.errors import InputError
from dcgan_data.core.files import check_output, progress
from dcgan_data.core.images import ImageError, center_crop_resize, decode_image
from dcgan_data.core.shards import ShardSet, is_shard_dir
from dcgan_data.ingest.sources.folder import image_files

log = logging.getLogger(__name__)

SAMPLE_BATCH = 500  # generator images drawn per forward pass


@dataclass
class Images:
    """Images to check: (N, S, S, 3) uint8 rows and one name each."""

    rows: np.ndarray
    names: list[str]
    info: dict[str, Any]


def is_run_dir(path: Path) -> bool:
    return (path / "checkpoints").is_dir() or (path / "config.json").is_file() and \
        (path / "metrics.jsonl").is_file()


def read_generated(path: Path, n: int, size: int, seed: int, device: str,
                   checkpoint: str | None = None) -> Images:
    """Up to n images to audit, as size x size rows: drawn from a training run's generator,
    or the first n of a shard directory or a folder of image files."""
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if not path.is_dir():
        raise InputError(f"{path}: expected a training run, a shard directory or a folder "
                         "of images")
    if is_run_dir(path):
        images = _draw_samples(path, n, seed, device, checkpoint)
    elif is_shard_dir(path):
        shards = ShardSet(path)
        count = min(n, len(shards))
        keys = shards.keys()[:count]
        images = Images(shards.load(np.arange(count)), keys,
                        {"kind": "shards", "available": len(shards)})
    else:
        images = _read_folder(path, n)
    if not len(images.rows):
        raise InputError(f"{path}: no images to audit")
    return _to_size(images, size)


def _draw_samples(run: Path, n: int, seed: int, device: str, checkpoint: str | None) -> Images:
    from dcgan_data.train.sampling import checkpoint_path, load_generator, sample_images

    path = checkpoint_path(run, checkpoint)
    if not path.exists():
        raise InputError(f"{path}: no such checkpoint")
    g, cfg = load_generator(path, device)
    parts = []
    for start in progress(range(0, n, SAMPLE_BATCH), desc="sample", unit="batch"):
        # each batch has its own seed, so the samples do not depend on the batch size
        parts.append(sample_images(g, cfg, min(SAMPLE_BATCH, n - start), seed + start))
    names = [f"sample{i:06d}" for i in range(n)]
    return Images(np.concatenate(parts), names, {"kind": "run", "checkpoint": str(path),
                                                "seed": seed})


def _read_folder(folder: Path, n: int) -> Images:
    files = image_files(folder)
    rows, names, skipped = [], [], []
    for file in files:
        if len(rows) == n:
            break
        try:
            rgb, _ = decode_image(file.read_bytes())
            side = min(rgb.shape[:2])
            rows.append(center_crop_resize(rgb, side, min_side=1))
            names.append(file.relative_to(folder).as_posix())
        except (OSError, ImageError) as exc:
            skipped.append(f"{file.relative_to(folder).as_posix()}: {exc}")
    if skipped:
        log.warning("%s: skipped %d unreadable image(s), first: %s", folder, len(skipped),
                    skipped[0])
    info = {"kind": "folder", "files": len(files), "skipped": len(skipped),
            "skipped_files": skipped[:100]}
    if not rows:
        what = f"none of its {len(files)} image files could be read" if files else \
            "it holds no image files"
        raise InputError(f"{folder}: no images to audit ({what})")
    sides = {r.shape[0] for r in rows}
    side = max(sides)
    if len(sides) > 1:  # one array needs one size; the common size is set by _to_size
        rows = [cv2.resize(r, (side, side), interpolation=cv2.INTER_AREA) for r in rows]
    return Images(np.stack(rows), names, info)


def _to_size(images: Images, size: int) -> Images:
    have = images.rows.shape[1]
    if have == size and images.rows.shape[2] == size:
        return images
    log.warning("generated images are %dx%d, the training images %dx%d: resizing them to "
                "%dx%d", have, images.rows.shape[2], size, size, size, size)
    interp = cv2.INTER_AREA if have > size else cv2.INTER_CUBIC
    rows = np.stack([cv2.resize(r, (size, size), interpolation=interp) for r in images.rows])
    return Images(rows, images.names, {**images.info, "resized_from": have})


def calibration_images(holdout: Holdout, shards: ShardSet, size: int, seed: int, device: str
                       ) -> tuple[Images, np.ndarray]:
    """The real images to calibrate on, and the training row each one is (-1: none, for a
    folder or shard directory of images the generator never saw)."""
    if isinstance(holdout, Path):
        if holdout.is_dir() and is_run_dir(holdout):
            raise InputError(f"--holdout {holdout} is a training run; give real images")
        real = read_generated(holdout, 10**9, size, seed, device)
        return real, np.full(len(real.rows), -1, np.int64)
    own_rows = calibration_rows(len(shards), holdout, seed)
    keys = shards.keys()
    return Images(shards.load(own_rows), [keys[i] for i in own_rows], {}), own_rows


def check_paths(out: Path, inputs: list[Path]) -> None:
    check_output(out, directory=True, option="-o")
    for path in inputs:
        if path.exists() and out.exists() and out.resolve() == path.resolve():
            raise InputError(f"-o {out} is an input; write the audit somewhere else")


def open_training(train: Path) -> ShardSet:
    if not train.exists():
        raise InputError(f"--train {train}: no such directory")
    if not is_shard_dir(train):
        raise InputError(f"--train {train}: not a shard directory (run `dcgan-data ingest` "
                         "or `dedup` first)")
    shards = ShardSet(train)
    if len(shards) == 0:
        raise InputError(f"--train {train}: the shard directory holds no images")
    return shards
