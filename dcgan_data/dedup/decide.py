"""The decision: which row is kept in place of each row, from the verified candidate pairs
(or, by the paper's rule, from the hash groups alone)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path
from typing import Any

import numpy as np

from dcgan_data.core.errors import DcganDataError
from dcgan_data.core.stage import Phases
from dcgan_data.dedup import fine, partition, selffit
from dcgan_data.dedup.blank import BlankAwareScorer
from dcgan_data.dedup.candidates import candidate_pairs
from dcgan_data.dedup.features import textures
from dcgan_data.dedup.grouping import find_groups
from dcgan_data.dedup.inputs import Inputs
from dcgan_data.dedup.logistic import VerifyModel
from dcgan_data.dedup.options import SELF_FIT_MIN_ROWS, DedupOptions
from dcgan_data.dedup.report import Grouping, SelfFit
from dcgan_data.dedup.scan import Rows
from dcgan_data.dedup.stars import Scorer, keep_priority, kept_first, verified_groups
from dcgan_data.dedup.verify import Verifier, scored_with_features
from dcgan_data.engines.local import LocalEngine
from dcgan_data.engines.runner import Engine


class RunTimeDecider:
    """Scores pairs with the model fitted on this dataset (`selffit`): the fixed verifier's
    score, set against each image's neighbourhood."""

    def __init__(self, verifier: Verifier, model: selffit.RunTimeModel,
                 neighbourhood: selffit.Neighbourhood, texture: np.ndarray,
                 threshold: float | None, a: np.ndarray, b: np.ndarray):
        self.verifier, self.model = verifier, model
        self.candidates = np.minimum(a, b) * len(texture) + np.maximum(a, b)
        self.neighbourhood, self.texture = neighbourhood, texture
        self.threshold = model.threshold if threshold is None else threshold

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Log-odds of pairs that were not all candidates (the keeper re-checks): a pair that
        was not is not left out of its images' neighbourhoods, as it was never in them."""
        fixed = self.verifier(a, b)
        n = len(self.texture)
        candidate = np.isin(np.minimum(a, b) * n + np.maximum(a, b), self.candidates)
        return self.model.log_odds(selffit.pair_stack_features(
            a, b, np.where(candidate, fixed, np.nan), self.verifier.last_features,
            self.neighbourhood, self.texture, fixed))


@dataclass
class Decision:
    """The row kept in place of each of SRC's rows, each removed row's score against it, and
    how the groups were found."""

    kept_as: np.ndarray
    row_score: np.ndarray  # NaN where unverified
    grouping: Grouping

    @cached_property
    def removed(self) -> np.ndarray:
        return np.flatnonzero(self.kept_as != np.arange(len(self.kept_as)))

    @cached_property
    def group_sizes(self) -> Counter:
        return Counter(self.kept_as.tolist())


def decide(rows: Rows, inputs: Inputs, options: DedupOptions, device: str, engine: Engine,
           out: Path) -> Decision:
    """Group the rows and choose the row each one is kept as; refuses a grouping where one
    group holds more than `max_bucket_share` of the images."""
    keys_per_row = 1 if rows.probes is None else rows.probes.shape[1]
    parts = partition.auto_partitions(len(rows.hashes), keys_per_row) \
        if options.partitions == "auto" else options.partitions
    # on this machine partitions run one after another, so that memory holds one at a time;
    # a Ray cluster runs them in parallel, spilled to OUT, the path every node can read
    partitioning = {"partitions": parts, "spill_dir": out,
                    "engine": engine if engine.name == "ray" else LocalEngine(1)}
    area = np.concatenate([np.prod(inputs.shards.source_hw().astype(np.int64), axis=1),
                           np.zeros(len(rows.hashes) - rows.own, np.int64)])
    if options.verify:
        kept_as, row_score, grouping = verified_decision(rows, inputs, options, device, area,
                                                         partitioning)
    else:
        labels = find_groups(rows.hashes, options.radius, rows.probes, **partitioning)
        kept_as = choose_kept(labels, area, options.keep, rows.own)
        row_score = np.full(len(rows.hashes), np.nan, np.float32)
        grouping = Grouping(verified=False)
    grouping.partitions = parts
    decision = Decision(kept_as[: rows.own], row_score[: rows.own], grouping)
    largest = max(decision.group_sizes.values())
    if rows.own >= 50 and largest / rows.own > options.max_bucket_share:
        raise DcganDataError(
            f"degenerate grouping: one group holds {largest} of {rows.own} images; "
            "refusing to remove them (raise --max-bucket-share if the images really are "
            "that alike)")
    return decision


def verified_decision(rows: Rows, inputs: Inputs, options: DedupOptions, device: str,
                      area: np.ndarray, partitioning: dict[str, Any]
                      ) -> tuple[np.ndarray, np.ndarray, Grouping]:
    """Candidates from every generator, verified; the kept row of each row and its score.
    With --self-fit and enough rows to learn from, the decision is the model fitted on them."""
    o, seconds = options, Phases()
    self_fit = None
    if o.self_fit and rows.own >= SELF_FIT_MIN_ROWS:
        self_fit = selffit.FitRows(inputs.shards.load, rows.grey, rows.colour,
                                   textures(rows.grey, device), rows.own,
                                   VerifyModel.load().threshold)
    with seconds.timed("candidates"):
        a, b, proposed = candidate_pairs(rows.hashes, rows.probes, o.radius, rows.grey,
                                         o.neighbours, o.mirrors, device, o.min_cosine,
                                         **partitioning)
    with seconds.timed("verification"):
        # the fixed model's looks run at its own threshold when the fitted model decides
        verifier = Verifier(rows.grey, rows.colour, None if self_fit else o.verify_threshold,
                            o.mirrors, device, keep_features=self_fit is not None,
                            progress_desc="verify")
        scores = verifier(a, b)
        verifier.progress_desc = "re-check"  # its later calls: pairs with a group's keeper
    decider: Scorer = verifier
    estimates = None
    with seconds.timed("self_fit"):
        if self_fit is not None and len(a):  # no candidate pair: nothing to decide
            model, neighbourhood, scores, estimates = selffit.fit(
                a, b, scores, verifier.last_features, self_fit,
                partial(scored_with_features, mirrors=o.mirrors, device=device,
                        progress_desc="self-fit"),
                o.max_false_share, o.seed)
            decider = RunTimeDecider(verifier, model, neighbourhood, self_fit.texture,
                                     o.verify_threshold, a, b)
    # blank rows are decided by colour, whichever model scores the rest
    decider = BlankAwareScorer(decider, rows.grey, rows.colour)
    scores = decider.decided(a, b, scores)
    seconds.seconds["fine_look"] = 0.0  # reported even when no pair shares a row
    with seconds.timed("groups"):
        load_fine = fine.fine_rows(inputs.shards, inputs.other)

        def likeness(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            with seconds.timed("fine_look"):  # part of the groups' time
                return fine.likeness(load_fine, x, y, o.mirrors, device)

        kept_as, row_score, split = verified_groups(len(rows.hashes), a, b, scores, decider,
                                                    area, o.keep, rows.own, likeness)
    return kept_as, row_score, Grouping(
        verified=True,
        threshold=round(decider.threshold, 3) if np.isfinite(decider.threshold) else None,
        decision="fitted on this dataset" if estimates else "fixed model",
        self_fit=SelfFit.from_json(estimates, strict=True) if estimates else None,
        candidates=proposed, verified_pairs=int((scores >= decider.threshold).sum()),
        pairs_scored=verifier.scored, pairs_aligned=verifier.aligned,
        pairs_unoverlaid=verifier.unoverlaid,
        pairs_passed_chroma_matched=verifier.chroma_matched,
        pairs_equalised=verifier.tone_looked,
        second_look_skipped=verifier.second_look_skipped, **split,
        seconds=seconds.rounded(3))


def choose_kept(labels: np.ndarray, area: np.ndarray, keep: str, protected: int) -> np.ndarray:
    """The row kept in place of each row (itself if kept): in each group the row of lowest
    `keep_priority` (an --against row if the group holds one: it is not ours to drop, and the
    group loses all of our rows)."""
    return kept_first(labels, keep_priority(area, keep, protected))
