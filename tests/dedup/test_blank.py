"""Blank rows: decided by colour, not by the looks."""

from __future__ import annotations

import numpy as np

from dcgan_data.dedup import thumbnails
from dcgan_data.dedup.blank import (
    BLANK_LOG_ODDS,
    BLANK_RANGE,
    BlankAwareScorer,
    blank_rows,
    decided_by_colour,
)
from dcgan_data.testing.photos import photo_crops


def rows_and_thumbnails():
    photos = photo_crops(2, size=64, seed=5)
    flat = np.full((64, 64, 3), (90, 90, 81), np.uint8)
    faint = flat.copy()
    faint[:, 32:] += BLANK_RANGE  # just blank: a step no wider than BLANK_RANGE
    step = flat.copy()
    step[:, 32:] += BLANK_RANGE + 2  # a visible edge: texture
    other = flat.copy()
    other[..., 2] += 20  # another colour, the same grey level nearly
    rows = np.stack([*photos, flat, faint, step, other])
    return thumbnails.thumbnails(rows)


def test_blank_rows_span_few_grey_levels():
    grey, _ = rows_and_thumbnails()
    assert blank_rows(grey).tolist() == [False, False, True, True, False, True]


def test_pairs_with_a_blank_row_are_decided_by_colour_and_others_left_as_scored():
    grey, colour = rows_and_thumbnails()
    a, b = np.array([0, 2, 2, 2, 4, 1]), np.array([1, 3, 5, 0, 2, 4])
    scores = np.arange(6, dtype=np.float32) - 2
    decided = decided_by_colour(blank_rows(grey), colour, a, b, scores)
    assert decided.tolist() == [-2, BLANK_LOG_ODDS, -BLANK_LOG_ODDS, -BLANK_LOG_ODDS,
                                -BLANK_LOG_ODDS, 3]
    assert scores.tolist() == [-2, -1, 0, 1, 2, 3]  # the caller's scores are not changed


def test_a_blank_aware_scorer_wraps_any_scorer():
    grey, colour = rows_and_thumbnails()

    class Constant:
        threshold = 1.5

        def __call__(self, a, b):
            return np.full(len(a), 7.0, np.float32)

    scorer = BlankAwareScorer(Constant(), grey, colour)
    assert scorer.threshold == 1.5
    # decided relative to the threshold, whatever it is
    assert scorer(np.array([0, 2, 2]), np.array([1, 5, 3])).tolist() == [
        7.0, 1.5 - BLANK_LOG_ODDS, 1.5 + BLANK_LOG_ODDS]
    Constant.threshold = 100.0
    assert scorer(np.array([2]), np.array([3])).tolist() == [100.0 + BLANK_LOG_ODDS]
