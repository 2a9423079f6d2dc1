"""A planted memoriser, for the tests and the benchmark: training rows, unseen real rows and
a stand-in generator's output, some of it edited copies of training rows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# near-duplicate edits a memorised image may carry; "shift" moves the crop 1-3 output pixels
PLANTED_EDITS = ("jpeg_q75", "webp_q80", "brighter_10pct", "darker_10pct", "slight_blur", "shift")


@dataclass
class Planted:
    """Training rows, real rows the generator never saw, and a stand-in generator's output:
    for `copy_of >= 0`, an edited copy of training row copy_of, else a real unseen image."""

    train: np.ndarray
    unseen: np.ndarray
    generated: np.ndarray
    copy_of: np.ndarray
    edits: list[str]


def planted_memoriser(photos: list[np.ndarray], per_photo: int, copies: int, fakes: int,
                      unseen: int, size: int = 64, seed: int = 0) -> Planted:
    """Distinct crops of `photos` (overlapping each other by at most half) split into a
    training set, `unseen` real images for calibration and `fakes` more for the stand-in
    generator's non-copies; plus `copies` edited copies of random training rows."""
    from dcgan_data.testing.neardup import cut, distinct_crops, near_duplicate

    rng = np.random.default_rng(seed)
    crops = distinct_crops([p.shape[:2] for p in photos], per_photo, rng)
    order = rng.permutation(len(crops))
    n_train = len(crops) - unseen - fakes
    if n_train < 2:
        raise ValueError(f"{len(crops)} crops: too few for {unseen} + {fakes} unseen images")
    rows = np.stack([cut(photos[c.photo], c, size) for c in crops])
    train_idx, rest = order[:n_train], order[n_train:]
    copy_of = np.r_[rng.integers(0, n_train, copies), np.full(fakes, -1)]
    generated, edits = [], []
    for source in copy_of[:copies]:
        crop = crops[train_idx[source]]
        edit = str(rng.choice(PLANTED_EDITS))
        if edit == "shift":
            step = crop.side / size
            dy, dx = (int(round(rng.integers(1, 4) * step * s)) for s in rng.choice([-1, 1], 2))
            generated.append(cut(photos[crop.photo], crop, size, dy, dx))
        else:
            generated.append(near_duplicate(photos[crop.photo], crop, size, edit, rng))
        edits.append(edit)
    generated.extend(rows[rest[unseen:]])
    edits.extend(["none"] * fakes)
    shuffle = rng.permutation(len(copy_of))
    generated = np.stack(generated) if generated else np.zeros((0, *rows.shape[1:]), np.uint8)
    return Planted(rows[train_idx], rows[rest[:unseen]], generated[shuffle],
                   copy_of[shuffle], [edits[i] for i in shuffle])
