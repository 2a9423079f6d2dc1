"""Verification: each candidate pair decided on small thumbnails of its two images.

Hashes are fast but blunt: equal hashes miss copies whose colour, contrast or framing changed,
and a generous rule (nearby hashes, shared probe hashes) also joins unrelated low-texture
images. So dedup proposes candidate pairs generously (`candidates`) and decides each one here:

* every row keeps a 32x32 grey thumbnail and an 8x8 colour one (`thumbnails`, 1.2 KB);
* the second image is aligned to the first over a few views (as is, zoomed in either image,
  rotated a few degrees) and small shifts; at the best view, a handful of features (grey
  correlation, with and without the pixels that differ most, DCT agreement, level-free
  colour difference, contrast ratio, how much texture the images have, fine detail, chroma;
  `features`) go through a logistic model fitted on this project's own near-duplicate edits
  (`tools/fit_verify.py`, `verify_model.json`, `logistic`). A pair is a duplicate when the
  model's log-odds pass the model's threshold (or `--verify-threshold`).
* pairs that fall just short (a perspective change, a pad or a rotation between the fixed
  views) get a second look (`alignment`): an affine map fitted to their grey thumbnails,
  kept only when it is close to a plain move, then the same features on the aligned pair.
  The model's `align_band` says which pairs get it and `align_margin` how much more the
  aligned pair must score, both set by `tools/fit_verify.py` at the same precision target.
* pairs still short, within the model's `overlay_band`, get an overlay look (`overlay`): the
  square or strip where the two differ most (an emoji, a caption) is filled in on both from
  around it and the pair is scored again, passing only by `overlay_margin` more; only pairs
  whose difference that window mostly holds are filled (`OVERLAY_MIN_SHARE`).
* every pair also gets a chroma look, from the same pass: the stronger chroma of the two
  scaled toward the weaker (a copy made grey, paler or more vivid differs in colour only
  where its hue moved), passing only by `chroma_margin` more.
* pairs still short, within the model's `tone_band`, get a tone look (`tone`): both
  thumbnails equalised on their own (levels replaced by their ranks), so that an equalised,
  CLAHE'd or gamma-changed copy is compared on what such edits keep, passing only by
  `tone_margin` more.

Pairs with a blank (flat) row are then decided by colour instead (`blank`, in `decide`), and
with `--self-fit` the model fitted on the dataset scores the rest (`selffit`).

Everything but the second look's alignment (OpenCV, pair by pair, on the CPU) is batched
tensor code: the same on CPU and GPU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dcgan_data.core.files import progress
from dcgan_data.dedup.alignment import aligned_pair_features
from dcgan_data.dedup.features import FEATURES, local_order, pair_looks
from dcgan_data.dedup.logistic import VerifyModel
from dcgan_data.dedup.overlay import unoverlaid_pair_features
from dcgan_data.dedup.tone import tone_free_pair_features

SECOND_LOOK_SHARE = 0.03  # of the pairs scored, at most this many get a second look...
SECOND_LOOK_MIN = 256  # ...or this many, whichever is more
LOOK_CHUNK = 1 << 16  # pairs looked at together: bounds the memory of every look


def near_threshold(scores: np.ndarray, threshold: float, band: float) -> np.ndarray:
    """Indices of the scores within `band` below the threshold: the pairs a second look is
    for (dedup's verifier and the fit of its margin pick them alike)."""
    return np.flatnonzero((scores < threshold) & (scores >= threshold - band))


class Verifier:
    """Scores pairs of rows by their thumbnails: log-odds of being near duplicates."""

    def __init__(self, grey: np.ndarray, colour: np.ndarray, threshold: float | None,
                 mirrors: bool, device: str, keep_features: bool = False,
                 progress_desc: str | None = None):
        self.grey, self.colour, self.mirrors, self.device = grey, colour, mirrors, device
        self.keep_features = keep_features
        self.progress_desc = progress_desc  # each look of a call shown as progress; None: not
        self.model = VerifyModel.load()
        self.threshold = self.model.threshold if threshold is None else threshold
        self.scored = self.aligned = self.second_look_skipped = self.unoverlaid = 0
        self.tone_looked = 0
        self.last_features = np.zeros((0, len(FEATURES)), np.float32)
        self.chroma_matched = 0

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Log-odds of the pairs (a[i], b[i])."""
        order = local_order(a, b, len(self.grey))
        scores, plain = self._scored(a[order], b[order])
        # the plain looks' features of this call's pairs, for the model fitted on the dataset
        # (selffit); replaced by the next call
        self.last_features = np.empty_like(plain)
        if self.keep_features:
            self.last_features[order] = plain
        out = np.empty_like(scores)
        out[order] = scores
        return out

    def _scored(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Log-odds of pairs in `local_order`, and their plain features if kept."""
        scores, chroma_scores = np.empty((2, len(a)), np.float32)
        plain_features = np.empty((len(a) if self.keep_features else 0, len(FEATURES)),
                                  np.float32)
        with self._progress("plain look", len(a)) as bar:
            for start in range(0, len(a), LOOK_CHUNK):
                part = slice(start, start + LOOK_CHUNK)
                plain, chroma = pair_looks(self.grey, self.colour, a[part], b[part],
                                           self.mirrors, self.device)
                if self.keep_features:
                    plain_features[part] = plain
                scores[part] = self.model.log_odds(plain)
                chroma_scores[part] = self.model.log_odds(chroma) - self.model.chroma_margin
                bar.update(len(plain))
        self.scored += len(a)
        self._second_look(a, b, scores)
        self._overlay_look(a, b, scores)
        # last, as fitted: the pairs that pass only when their chroma is matched
        gained = (scores < self.threshold) & (chroma_scores >= self.threshold)
        self.chroma_matched += int(gained.sum())
        scores = np.maximum(scores, chroma_scores)
        self._tone_look(a, b, scores)
        return scores, plain_features

    def _progress(self, look: str, pairs: int) -> Any:
        return progress(total=pairs, desc=f"{self.progress_desc}: {look}", unit="pair",
                        leave=False, disable=self.progress_desc is None or not pairs)

    def _second_look(self, a: np.ndarray, b: np.ndarray, scores: np.ndarray) -> None:
        """Pairs just short of the threshold scored again after a fitted alignment; a pair's
        score is the better of the two, the aligned one less the model's margin. At most
        SECOND_LOOK_SHARE of the pairs (the closest to the threshold first) get it, so that a
        set where many pairs fall just short cannot multiply the cost of verification."""
        near = near_threshold(scores, self.threshold, self.model.align_band)
        budget = max(SECOND_LOOK_MIN, int(SECOND_LOOK_SHARE * len(scores)))
        if len(near) > budget:
            self.second_look_skipped += len(near) - budget
            near = np.sort(near[np.argsort(-scores[near], kind="stable")[:budget]])
        if not len(near):
            return
        with self._progress("second look", len(near)) as bar:
            features, found = aligned_pair_features(self.grey, self.colour, a[near], b[near],
                                                    self.mirrors, self.device, bar.update)
        aligned = self.model.log_odds(features).astype(np.float32) - self.model.align_margin
        better = found & (aligned > scores[near])
        scores[near[better]] = aligned[better]
        self.aligned += len(near)

    def _overlay_look(self, a: np.ndarray, b: np.ndarray, scores: np.ndarray) -> None:
        """Pairs still short of the threshold, within the model's overlay band, scored again
        with the region where they differ most filled in on both (an emoji or a caption drawn
        on a copy); a pair's score is the better of the two, the filled one less the model's
        margin. The pairs are compared as they lie (one view), the cost of their features;
        only pairs whose difference is compact, as an overlay's is, are filled in."""
        near = near_threshold(scores, self.threshold, self.model.overlay_band)
        self.unoverlaid += self._looked_again(
            "overlay look", near, a, b, scores, self.model.overlay_margin,
            lambda x, y: unoverlaid_pair_features(self.grey, self.colour, x, y, self.device))

    def _tone_look(self, a: np.ndarray, b: np.ndarray, scores: np.ndarray) -> None:
        """Pairs still short of the threshold, within the model's tone band, scored again on
        their equalised thumbnails; a pair's score is the better of the two, the equalised
        one less the model's margin."""
        near = near_threshold(scores, self.threshold, self.model.tone_band)
        self._looked_again("tone look", near, a, b, scores, self.model.tone_margin,
                           lambda x, y: tone_free_pair_features(self.grey, self.colour, x, y,
                                                                self.mirrors, self.device))
        self.tone_looked += len(near)

    def _looked_again(self, look: str, near: np.ndarray, a: np.ndarray, b: np.ndarray,
                      scores: np.ndarray, margin: float,
                      features: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> int:
        """SCORES of the pairs NEAR raised to their log-odds by another LOOK (`features` of
        pairs a, b; a NaN row: the look passed the pair over) less MARGIN, LOOK_CHUNK pairs
        at a time. Returns how many pairs the look scored."""
        scored = 0
        with self._progress(look, len(near)) as bar:
            for start in range(0, len(near), LOOK_CHUNK):
                part = near[start : start + LOOK_CHUNK]
                again = self.model.log_odds(features(a[part], b[part])) - margin
                scores[part] = np.fmax(scores[part], again)  # NaN: passed over
                scored += int(np.isfinite(again).sum())
                bar.update(len(part))
        return scored

def scored_with_features(grey: np.ndarray, colour: np.ndarray, a: np.ndarray, b: np.ndarray,
                         mirrors: bool = False, device: str = "cpu",
                         progress_desc: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The fixed model's scores of the pairs (a[i], b[i]) of these thumbnails, at its own
    threshold, and their plain features: what the run-time fit learns from."""
    scorer = Verifier(grey, colour, None, mirrors, device, keep_features=True,
                      progress_desc=progress_desc)
    return scorer(a, b), scorer.last_features
