"""The fine look (`dcgan_data.dedup.fine`): likeness of two rows at 64 px."""

import cv2
import numpy as np

from dcgan_data.core.images import decode_image, encode_image
from dcgan_data.dedup.fine import SHIFT, SIDE, fine_grey, fine_rows, likeness
from dcgan_data.testing.neardup import Crop, cut
from dcgan_data.testing.photos import PHOTOS, load_photo, write_shards


def _turned(rgb: np.ndarray, degrees: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(rgb, turn, (w, h), borderMode=cv2.BORDER_REFLECT)


def _rows() -> np.ndarray:
    """An original, its copy (moved 2 px at 64, JPEG q50), a look-alike (the crop 6 px over
    and turned 3 degrees), a mirror image of the original, a flat grey image."""
    photo = load_photo(PHOTOS[2])
    original = cut(photo, Crop(0, 40, 60, 200), 64)
    moved = cut(photo, Crop(0, 40, 66, 200), 64)
    copy = decode_image(encode_image(moved, "jpeg", 50))[0]
    look_alike = _turned(cut(photo, Crop(0, 58, 60, 200), 64), 3.0)
    flat = np.full_like(original, 128)
    return np.stack([original, copy, look_alike, original[:, ::-1], flat])


def test_a_copy_is_more_alike_than_a_look_alike():
    grey = fine_grey(_rows())
    a, b = np.array([0, 0, 0, 0, 4]), np.array([1, 2, 3, 4, 4])
    plain = likeness(lambda rows: grey[rows], a, b)
    assert plain[0] > 0.98 and plain[0] > plain[1] + 0.02 and plain[0] > plain[2]
    assert plain[3] == 0.0 and plain[4] == 0.0  # a flat image is like nothing, itself included
    mirrored = likeness(lambda rows: grey[rows], a, b, mirrors=True)
    assert mirrored[2] > 0.99 and np.array_equal(mirrored[[0, 1]], plain[[0, 1]])


def test_pairs_in_many_chunks_score_as_in_one(monkeypatch):
    from dcgan_data.dedup import fine

    grey = fine_grey(_rows())
    a, b = np.array([2, 0, 1, 0, 3]), np.array([1, 1, 2, 3, 0])
    whole = likeness(lambda rows: grey[rows], a, b)
    each = [likeness(lambda rows: grey[rows], a[i : i + 1], b[i : i + 1])[0]
            for i in range(len(a))]
    assert np.array_equal(whole, each)  # each pair's own likeness, in the order given
    monkeypatch.setattr(fine, "CHUNK", 2)
    assert np.array_equal(likeness(lambda rows: grey[rows], a, b), whole)


def test_fine_rows_reads_src_then_against_of_any_side(tmp_path, monkeypatch):
    from dcgan_data.dedup import fine

    monkeypatch.setattr(fine, "LOAD_BATCH", 1)  # read a row at a time
    rows = _rows()
    small = np.stack([cv2.resize(r, (32, 32), interpolation=cv2.INTER_AREA) for r in rows[:2]])
    src = write_shards(tmp_path / "src", small)
    other = write_shards(tmp_path / "other", rows[2:4])
    from dcgan_data.core.shards import ShardSet

    load = fine_rows(ShardSet(src), ShardSet(other))
    grey = load(np.array([3, 0, 2]))
    assert grey.shape == (3, SIDE, SIDE)
    assert np.array_equal(grey[0], fine_grey(rows[3:4])[0])
    assert np.array_equal(grey[2], fine_grey(rows[2:3])[0])
    assert np.array_equal(grey[1], fine_grey(small[:1])[0])  # a 32 px row, enlarged
    assert np.array_equal(fine_rows(ShardSet(src), None)(np.array([1]))[0],
                          fine_grey(small[1:2])[0])


def test_likeness_is_opencvs_best_normed_correlation_of_the_middle():
    grey = fine_grey(_rows())
    a, b = np.array([2, 0, 1, 0, 3]), np.array([1, 1, 2, 3, 0])
    got = likeness(lambda rows: grey[rows], a, b, mirrors=True)
    middle = slice(SHIFT, SIDE - SHIFT)
    for i, j, value in zip(a, b, got, strict=True):
        expected = max(cv2.matchTemplate(image, grey[i][middle, middle],
                                         cv2.TM_CCOEFF_NORMED).max()
                       for image in (grey[j], np.ascontiguousarray(grey[j][:, ::-1])))
        assert abs(value - expected) < 1e-4
