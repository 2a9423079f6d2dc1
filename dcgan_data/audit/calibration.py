"""The copy rule, calibrated on real images the index does not hold, and the words of the
verdict."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from dcgan_data.audit.rerank import relative_distances
from dcgan_data.core.errors import InputError

log = logging.getLogger(__name__)


def calibration_rows(total: int, holdout: int | float, seed: int) -> np.ndarray:
    """Sorted training rows to calibrate on, each against the index without itself: the
    count (or share) asked, at most every row, at least one."""
    if total < 3:
        raise InputError(f"the training set holds {total} image(s): too few to calibrate on; "
                         "pass --holdout with a folder of real images instead")
    count = round(total * holdout) if isinstance(holdout, float) else holdout
    count = max(1, min(count, total))
    return np.sort(np.random.default_rng(seed).choice(total, count, replace=False))


def copy_threshold(holdout: np.ndarray, alpha: float) -> tuple[float, float]:
    """The conformal copy rule. With m held-out distances, a sample's p-value is
    (1 + #held-out at least as close) / (m + 1); it is a copy when that is <= alpha, i.e.
    when it is strictly closer than the k-th closest held-out image, k = floor(alpha (m+1)).
    A holdout too small for alpha (k = 0) falls back to k = 1: closer than every held-out
    image, a false-copy rate of 1 / (m + 1). Returns (threshold, the alpha in effect)."""
    finite = np.sort(holdout[np.isfinite(holdout)])
    m = len(finite)
    if not m:
        return 0.0, 1.0
    k = max(1, math.floor(alpha * (m + 1) + 1e-9))
    return float(finite[k - 1]), k / (m + 1)


def calibration_warning(usable: int, alpha: float, alpha_used: float) -> str | None:
    """What to do when the calibration is too small to honour alpha; None when it is not."""
    if alpha_used <= alpha:
        return None
    need = math.ceil(1 / alpha - 1 - 1e-9)  # the fewest images with floor(alpha (m+1)) >= 1
    digits = 1 - math.floor(math.log10(alpha_used))  # two significant digits, rounded up
    accept = math.ceil(alpha_used * 10**digits) / 10**digits
    return (f"--alpha {alpha:g} needs at least {need} calibration images and {usable} were "
            f"usable, so the copy rule ran at alpha {alpha_used:.3g} (closer than every one of "
            f"them) instead: calibrate on at least {need} images (--holdout N training rows, "
            f"or a folder of real images the generator never saw), or pass --alpha {accept:g}")


def closer_share(samples: np.ndarray, holdout: np.ndarray) -> float:
    """P(a sample's distance is below a held-out real image's), ties half: 0.5 when samples
    are as near the training set as unseen real images are, near 1 when they copy. Used on
    relative distances: on raw ones a blurred sample, near many images at once, would look
    closer than a sharp real image."""
    samples, holdout = samples[np.isfinite(samples)], np.sort(holdout[np.isfinite(holdout)])
    if not len(samples) or not len(holdout):
        return float("nan")
    below = np.searchsorted(holdout, samples, "left")
    ties = np.searchsorted(holdout, samples, "right") - below
    return float(((len(holdout) - below - ties) + 0.5 * ties).sum() /
                 (len(samples) * len(holdout)))


def quantiles(values: np.ndarray) -> dict[str, float]:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return {}
    return {f"q{int(q * 100):02d}": round(float(np.quantile(finite, q)), 3)
            for q in (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95)}


def verdict(copies: int, count: int, alpha: float, closer: float, calibrated: int,
             distances: tuple[np.ndarray, np.ndarray], contrast: tuple[np.ndarray, np.ndarray]
             ) -> str:
    """Plain words: how many samples are called copies beside how many a generator that
    copies nothing would get, then how near the samples lie to the training set compared
    with real images left out of the index. Samples that are nearly flat (an untrained
    generator's grey) or far from every training image (noise) are said to be so: their
    relative distances then say nothing of copying. "Nearer" only when P is over 0.5 by
    three standard errors (the Mann-Whitney statistic's spread when the two sets of
    distances do not differ)."""
    called = (f"{copies} of {count} samples ({copies / count:.2%}) are called copies of a "
              f"training image, where a generator that copies nothing would get about "
              f"{alpha * count:.0f} (the rule calls {alpha:.2%} of real images copies by chance)")
    (sample_d, real_d), (sample_c, real_c) = (
        (a[np.isfinite(a)], b[np.isfinite(b)]) for a, b in (distances, contrast))
    spread = math.sqrt((count + calibrated + 1) / (12 * count * max(calibrated, 1)))
    nearer = (f"P(nearer) = {closer:.2f} +-{spread:.2f}, the share of (sample, real image) "
              "pairs where the sample's nearest training image stands out more from the next "
              "ones; 0.5 is no difference")
    if not len(sample_d) or not len(real_d):
        lean = "no distances to compare"
    elif np.median(sample_c) < np.quantile(real_c, 0.05):
        lean = (f"samples are nearly flat (median contrast {np.median(sample_c):.1f} grey "
                f"levels, real images {np.median(real_c):.1f}): they look like no training "
                "image, and how near they lie to plain ones says nothing of copying")
    elif np.median(sample_d) > np.quantile(real_d, 0.95):
        lean = (f"samples are far from every training image (median pixel distance to the "
                f"nearest {np.median(sample_d):.1f}, real images {np.median(real_d):.1f}): "
                "they look like none of them, as noise does")
    elif closer > 0.5 + 3 * spread:
        lean = f"samples lie nearer single training images than real images do ({nearer})"
    else:
        lean = f"samples lie no nearer the training set than real images do ({nearer})"
    return f"{called}; {lean}"


@dataclass
class Calibrated:
    """Each sample's nearest training row, the samples' and the calibration images' distances
    to the training set, and the copy rule they give."""

    nearest: np.ndarray  # each sample's nearest training row (-1: it had no candidate)
    distance: tuple[np.ndarray, np.ndarray]  # pixel distance to the nearest: samples, real
    relative: tuple[np.ndarray, np.ndarray]  # relative distance: samples, real
    threshold: float
    alpha_used: float
    usable: int  # calibration images with a relative distance
    warning: str | None
    copy: np.ndarray  # each sample: called a copy
    closer: float  # P(a sample's relative distance < a calibration image's)


def calibrate(rows: np.ndarray, distances: np.ndarray, samples: int, alpha: float
              ) -> Calibrated:
    """The copy rule from ranked candidates (rows, distances) of every query: the first
    `samples` queries are the generated images, the rest the calibration images."""
    distance = distances[:, 0]
    relative = relative_distances(distances)
    sample_r, holdout_r = relative[:samples], relative[samples:]
    threshold, alpha_used = copy_threshold(holdout_r, alpha)
    usable = int(np.isfinite(holdout_r).sum())
    warning = calibration_warning(usable, alpha, alpha_used)
    if warning:
        log.warning("audit: %s", warning)
    return Calibrated(
        nearest=rows[:samples, 0], distance=(distance[:samples], distance[samples:]),
        relative=(sample_r, holdout_r), threshold=threshold, alpha_used=alpha_used,
        usable=usable, warning=warning, copy=np.nan_to_num(sample_r, nan=np.inf) < threshold,
        closer=closer_share(sample_r, holdout_r))
