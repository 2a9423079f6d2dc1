"""Blank images: one flat fill, with nothing for the looks to compare.

The looks compare structure, and a blank thumbnail has none: its standardised view and DCT
signs are the rounding noise of its one level, so the verifier's score of two blank rows
says nothing about them. A pair with a blank row is decided here instead, by colour alone:
two blank rows are duplicates when their colour thumbnails agree everywhere within
BLANK_COLOUR_LEVELS; a blank row and a row with texture never are.
"""

from __future__ import annotations

import numpy as np

from dcgan_data.dedup.stars import Scorer

# a row whose grey thumbnail spans at most this many levels is blank: one fill, give or take
# rounding (a faint gradient keeps its structure for the looks, which standardise it)
BLANK_RANGE = 1
BLANK_COLOUR_LEVELS = 3  # two blank rows whose colour thumbnails differ at most this much
BLANK_LOG_ODDS = 30.0  # how far above or below the threshold a decided pair's score is set


def blank_rows(grey: np.ndarray) -> np.ndarray:
    """Which rows of (N, 32, 32) uint8 grey thumbnails are blank."""
    flat = grey.reshape(len(grey), -1)
    return flat.max(axis=1).astype(np.int16) - flat.min(axis=1) <= BLANK_RANGE


def decided_by_colour(blank: np.ndarray, colour: np.ndarray, a: np.ndarray, b: np.ndarray,
                      scores: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """SCORES of the pairs (a[i], b[i]), with each pair holding a blank row decided by
    colour: THRESHOLD + BLANK_LOG_ODDS for two blank rows of one colour, THRESHOLD -
    BLANK_LOG_ODDS otherwise (about 0 where THRESHOLD is not finite)."""
    centre = threshold if np.isfinite(threshold) else 0.0
    either = blank[a] | blank[b]
    if not either.any():
        return scores
    a, b = a[either], b[either]
    difference = np.abs(colour[a].astype(np.int16) - colour[b]).reshape(len(a), -1).max(axis=1)
    same = blank[a] & blank[b] & (difference <= BLANK_COLOUR_LEVELS)
    scores = scores.copy()
    scores[either] = centre + np.where(same, BLANK_LOG_ODDS, -BLANK_LOG_ODDS)
    return scores


class BlankAwareScorer:
    """A scorer whose pairs with a blank row are `decided_by_colour`."""

    def __init__(self, scorer: Scorer, grey: np.ndarray, colour: np.ndarray):
        self.scorer, self.colour = scorer, colour
        self.blank = blank_rows(grey)

    @property
    def threshold(self) -> float:
        return self.scorer.threshold

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return self.decided(a, b, self.scorer(a, b))

    def decided(self, a: np.ndarray, b: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """SCORES of the pairs (a, b) from the scorer, its blank pairs decided."""
        return decided_by_colour(self.blank, self.colour, a, b, scores, self.threshold)
