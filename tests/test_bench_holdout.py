"""The held-out dedup benchmark's own pieces (tools/holdout_sets.py, bench/dedup_holdout.py):
the photo split, the geometry of the hard negatives, and the scoring."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tools"))

import dedup_holdout  # noqa: E402
import dedup_holdout_losses  # noqa: E402
import holdout_sets  # noqa: E402


def test_photo_split_is_disjoint_halves_and_keeps_out_the_fitted_photos():
    splits = {p.name: holdout_sets.split(p) for p in holdout_sets.PHOTOS}
    dev = [n for n, s in splits.items() if s == "dev"]
    final = [n for n, s in splits.items() if s == "final"]
    assert len(dev) + len(final) == len(holdout_sets.PHOTOS) >= 40
    assert abs(len(dev) - len(final)) <= 4
    assert holdout_sets.SEEN <= set(dev)
    fitted = {p.stem for p in (ROOT / "pipelines" / "sample" / "photos").glob("*.jpg")}
    used = {Path(p.path).stem.lower() for p in holdout_sets.PHOTOS} | {
        p.name.split("_", 1)[1].lower() for p in holdout_sets.PHOTOS}
    assert not {f.split("_", 1)[1].lower() for f in fitted} & used


def test_hard_negatives_share_what_their_kind_says():
    rng = np.random.default_rng(0)
    photos = {"a": rng.integers(0, 256, (900, 1200, 3), dtype=np.uint8),
              "b": np.full((600, 800, 3), 128, np.uint8)}
    originals = [(name, box) for name, photo in photos.items()
                 for box in holdout_sets.place_originals(photo.shape, 12, rng)]
    for i, (name, box) in enumerate(originals):
        for other_name, other in originals[i + 1:]:
            if other_name == name:
                assert holdout_sets.shared(box, other) < holdout_sets.MAX_SHARED
    negatives = holdout_sets.hard_negatives(photos, originals, 5, rng)
    kinds = [kind for kind, _, _ in negatives]
    assert kinds.count("overlap") == kinds.count("adjacent") == 5
    for kind, name, box in negatives:
        best = max(holdout_sets.shared(box, o) for n, o in originals if n == name)
        if kind == "overlap":
            assert 0.3 <= best + 0.02 and best <= 0.6 + 0.02
        else:
            assert best < 0.6
    # the flat photo is the plainest: every plain crop comes from it
    assert {name for kind, name, _ in negatives if kind == "plain"} == {"b"}


def test_hash_groups_chain_and_keep_the_first_image():
    codes = np.zeros((4, 8), np.uint8)
    codes[1, 0] = 0b1  # 1 bit from row 0
    codes[2, 0] = 0b11  # 1 bit from row 1, 2 from row 0
    codes[3] = 0xFF  # far from all
    labels, kept = dedup_holdout.hash_labels(codes, 1)
    assert labels[0] == labels[1] == labels[2] != labels[3]
    assert kept.tolist() == [True, False, False, True]
    labels, _ = dedup_holdout.hash_labels(codes, 0)
    assert len(set(labels.tolist())) == 4


def write_set(folder: Path, levels: list[int]) -> list[str]:
    """A set's truth.csv (a, b, c one image; d another; e a negative) and its images, each
    one grey level."""
    from PIL import Image

    (folder / "truth.csv").write_text(
        "file,group,role,kind,photo\n"
        "a.jpg,0,original,original,p\nb.jpg,0,copy,blur,p\nc.jpg,0,copy,text,p\n"
        "d.jpg,1,original,original,p\ne.jpg,2,negative,plain,p\n")
    (folder / "images").mkdir()
    files = ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"]
    for name, level in zip(files, levels, strict=True):
        Image.new("RGB", (8, 8), (level,) * 3).save(folder / "images" / name, "JPEG")
    return files


def test_scores_count_wrong_groups_and_removals_without_a_true_copy(tmp_path):
    truth = dedup_holdout.Truth(tmp_path, write_set(tmp_path, [10, 60, 110, 160, 210]))
    assert truth.identical_joined == 0
    # a and b found together, c missed; d and the negative e wrongly put together
    labels = np.array([0, 0, 2, 3, 3])
    kept = np.array([True, False, True, True, False])
    result = dedup_holdout.scores(labels, kept, truth)
    assert (result["correct_pairs"], result["found_pairs"], result["true_pairs"]) == (1, 2, 3)
    assert result["recall_by_kind"] == {"blur": 1.0, "text": 0.0}
    assert result["negatives_grouped"] == {"plain": 1}
    assert (result["removed"], result["removed_without_true_copy"]) == (2, 1)
    assert result["false_removal_share"] == 0.5


def test_pixel_identical_images_are_one_group(tmp_path):
    files = write_set(tmp_path, [10, 60, 110, 160, 160])  # the negative e is d's pixels
    truth = dedup_holdout.Truth(tmp_path, files)
    assert truth.identical_joined == 1 and truth.group[3] == truth.group[4] != truth.group[0]
    labels, kept = np.array([0, 0, 0, 3, 3]), np.array([True, False, False, True, False])
    result = dedup_holdout.scores(labels, kept, truth)
    assert result["precision"] == 1.0 and result["negatives_grouped"] == {"plain": 0}
    as_built = dedup_holdout.Truth(tmp_path, files, as_built=True)
    assert as_built.group.tolist() == [0, 0, 0, 1, 2]
    assert dedup_holdout.scores(labels, kept, as_built)["precision"] == 0.75


def test_copy_outcomes_say_whether_a_copy_was_proposed_and_passed():
    truth = dedup_holdout.Truth.__new__(dedup_holdout.Truth)
    truth.group = np.array([0, 0, 0, 0, 1, 1])
    truth.role = ["original", "copy", "copy", "copy", "original", "copy"]
    truth.kind = ["", "blur", "blur", "meme", "", "blur"]
    # pairs as dedup proposes them (either order), with their log-odds; threshold 1
    a, b = np.array([1, 0, 0, 4]), np.array([0, 2, 5, 5])
    scores = np.array([3.0, -1.0, 9.0, 0.5])
    outcomes = dedup_holdout_losses.copy_outcomes(a, b, scores, 1.0, truth)
    assert outcomes == {"blur": {"passed": 1, "failed": 2, "median_short": 1.25},
                        "meme": {"not_proposed": 1, "median_short": None}}
