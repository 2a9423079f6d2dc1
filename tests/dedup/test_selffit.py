"""Dedup's run-time fit: neighbourhood levels, the threshold rule, the synthetic pairs."""

from __future__ import annotations

import numpy as np
import pytest

from dcgan_data.dedup import copy_edits, features, logistic, selffit, thumbnails
from tests.conftest import photo_crops


def test_neighbourhood_levels_leave_the_pair_itself_out():
    # row 0's pairs score 9 (with 1), 5 (with 2), 3 (with 3); row 4 has none
    a, b = np.array([0, 0, 0]), np.array([1, 2, 3])
    scores = np.array([9.0, 5.0, 3.0], np.float32)
    hood = selffit.Neighbourhood(5, a, b, scores)
    assert hood.best[0, :3].tolist() == [9, 5, 3] and hood.best[0, 3] == selffit.FLOOR
    assert (hood.best[4] == selffit.FLOOR).all()
    ranks = list(selffit.RANKS)
    levels = dict(zip(ranks, hood.levels(np.array([0]), np.array([9.0]))[0].tolist(),
                      strict=True))
    # the pair scoring 9 is row 0's best: its level 1 is the next one, 5
    assert levels[1] == 5 and levels[2] == 3
    # a pair not among the candidates (a synthetic one) is compared with all of them
    assert hood.levels(np.array([0]), None)[0, 0] == 9
    # a pair below the row's best leaves the best as its level 1
    assert hood.levels(np.array([0]), np.array([3.0]))[0, 0] == 9
    # a pair that is no candidate (NaN: a keeper re-check) is not left out, however high
    assert hood.levels(np.array([0]), np.array([np.nan]))[0, :2].tolist() == [9, 5]


def test_a_pair_standing_out_of_a_crowd_scores_above_one_within_it():
    plain = np.zeros((1, len(features.FEATURES)), np.float32)
    crowd = selffit.stack_features(np.array([6.0]), np.array([[5.5, 5.0, 5.0]]),
                                   np.array([[5.5, 5.0, 5.0]]), np.array([1.0]), plain)
    alone = selffit.stack_features(np.array([6.0]), np.array([[-10.0, -12.0, -15.0]]),
                                   np.array([[-9.0, -12.0, -15.0]]), np.array([1.0]), plain)
    assert crowd.shape == (1, len(selffit.NAMES))
    above = [selffit.NAMES.index(f"above_level_{k}") for k in selffit.RANKS]
    assert (crowd[0, above] <= 1).all() and (alone[0, above] > 14).all()


def test_threshold_keeps_the_expected_false_share():
    rng = np.random.default_rng(0)
    odds = np.r_[rng.normal(-8, 2, 20_000), rng.normal(6, 2, 500)].astype(np.float32)
    loose, loose_est = selffit.choose_threshold(odds, 0.5, 0.05)
    strict, strict_est = selffit.choose_threshold(odds, 0.5, 0.001)
    assert strict > loose
    assert strict_est["expected_false_share"] <= 0.001 < loose_est["expected_false_share"] <= 0.05
    assert strict_est["pairs_accepted"] == int((odds >= strict).sum())
    # the share of copies among the candidates is estimated, not assumed from the fit
    assert 0.01 < loose_est["candidate_copy_share"] < 0.05


def test_threshold_when_nothing_can_be_accepted():
    threshold, estimate = selffit.choose_threshold(np.full(10, -5.0, np.float32), 0.5, 0.01)
    assert threshold == np.inf and estimate["pairs_accepted"] == 0


@pytest.mark.parametrize("family", list(copy_edits.FAMILIES))
def test_every_edit_keeps_the_row_shape_and_changes_it(family):
    row = photo_crops(1, seed=4)[0]
    for i, edit in enumerate(copy_edits.FAMILIES[family]):
        out = edit(row.copy(), np.random.default_rng(i))
        assert out.shape == row.shape and out.dtype == np.uint8, edit
        assert np.abs(out.astype(int) - row).mean() > 0.5, edit


def test_look_alike_crops_are_two_different_views_of_one_row():
    rows = photo_crops(20, seed=5)
    rng = np.random.default_rng(0)
    for row in rows:
        first, second = copy_edits.look_alike_pair(row, rng)
        assert first.shape == second.shape == row.shape
        assert np.abs(first.astype(int) - second).mean() > 2


def test_a_fit_without_candidate_pairs_sets_no_threshold_and_says_so():
    from dcgan_data.dedup.verify import scored_with_features

    rows = photo_crops(40, seed=6)
    grey, colour = thumbnails.thumbnails(rows)
    data = selffit.FitRows(lambda index: rows[index], grey, colour, features.textures(grey),
                           len(rows), logistic.VerifyModel.load().threshold)
    none = np.zeros(0, np.int64)
    model, _, odds, estimates = selffit.fit(none, none, np.zeros(0, np.float32),
                                            np.zeros((0, len(features.FEATURES)), np.float32),
                                            data, scored_with_features, 0.01, 0)
    assert model.threshold == np.inf and estimates["threshold"] is None and len(odds) == 0
    assert estimates["pairs_accepted"] == 0 and estimates["rows_sampled"] == 40


def test_the_threshold_accepts_exactly_the_pairs_it_counts():
    for seed in range(200):
        rng = np.random.default_rng(seed)
        odds = np.r_[rng.normal(-6, 3, 1000), rng.normal(5, 3, int(rng.integers(10, 400)))]
        threshold, estimate = selffit.choose_threshold(odds.astype(np.float32),
                                                       float(rng.uniform(0.2, 0.8)), 0.01)
        assert estimate["pairs_accepted"] == int((odds.astype(np.float32) >= threshold).sum())


def test_copies_in_a_large_group_are_not_taken_for_negatives():
    # eight copies of one image: every pair scores high, most outside each other's 4 best
    a, b = (np.array(x) for x in zip(*[(i, j) for i in range(8) for j in range(i + 1, 8)],
                                     strict=True))
    scores = np.linspace(12, 25, len(a)).astype(np.float32)
    hood = selffit.Neighbourhood(8, a, b, scores)
    assert len(selffit.real_negatives(a, b, scores, hood, np.arange(8), below=1.0)) == 0
    low = scores - 20  # the same pairs, rejected by the fixed model: near neighbours
    hood = selffit.Neighbourhood(8, a, b, low)
    assert len(selffit.real_negatives(a, b, low, hood, np.arange(8), below=1.0)) > 0


def _run_time_model(rng: np.random.Generator) -> selffit.RunTimeModel:
    columns = len(selffit.NAMES)
    return selffit.RunTimeModel({"mean": rng.normal(size=columns).tolist(),
                                 "scale": rng.uniform(0.5, 3, columns).tolist(),
                                 "weights": rng.normal(size=columns).tolist(), "bias": 0.3,
                                 "quadratic": selffit.QUADRATIC}, 0.0)


def test_scoring_in_chunks_gives_every_pair_the_same_log_odds():
    rng = np.random.default_rng(0)
    model = _run_time_model(rng)
    pairs = rng.normal(0, 5, (1001, len(selffit.NAMES))).astype(np.float32)  # 1001: a tail
    whole = ((pairs - model.mean) / model.scale @ model.weights + model.bias).astype(np.float32)
    for chunk in (64, 128, 256, 1 << 20):  # powers of two, as CHUNK_ROWS
        scored = model.log_odds(pairs, chunk=chunk)
        assert scored.dtype == np.float32 and np.array_equal(scored, whole), chunk
    assert model.log_odds(pairs[:0]).shape == (0,)
    verify = logistic.VerifyModel.load()  # over the features and their products
    plain = rng.normal(0, 2, (333, len(features.FEATURES))).astype(np.float32)
    whole = verify.log_odds(plain, chunk=len(plain))
    assert all(np.array_equal(verify.log_odds(plain, chunk=c), whole) for c in (64, 128))
    assert logistic.CHUNK_ROWS & (logistic.CHUNK_ROWS - 1) == 0


def test_scoring_holds_one_chunk_of_float64_inputs_not_all():
    import tracemalloc

    rng = np.random.default_rng(1)
    model = _run_time_model(rng)
    pairs = rng.normal(0, 5, (200_000, len(selffit.NAMES))).astype(np.float32)
    all_as_float64 = pairs.size * 8
    tracemalloc.start()
    try:
        model.log_odds(pairs, chunk=10_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the result (P float64, then float32) and one chunk's float64 inputs, well under P x 17
    assert peak < all_as_float64 / 4, peak


def _synthetic_pairs_all_at_once(rows, data, score, rng):
    """synthetic_pairs as first written: every row and view in memory, then thumbnailed."""
    bases, copies, crops, other_crops = [], [], [], []
    for image in data.load(rows):
        copies.append(copy_edits.edited_copy(image, rng))
        bases.append(copy_edits.edited_copy(image, rng) if rng.random() < selffit.BOTH_EDITED
                     else image)
        crop, other = copy_edits.look_alike_pair(image, rng)
        crops.append(crop)
        other_crops.append(other)
    grey, colour = thumbnails.thumbnails(np.stack(bases + crops + copies + other_crops))
    k = 2 * len(rows)
    fixed, plain = score(grey, colour, np.arange(k), k + np.arange(k))
    return fixed, plain, np.r_[rows, rows], np.r_[np.ones(len(rows), bool),
                                                  np.zeros(len(rows), bool)]


def _fit_rows(rows: np.ndarray, loaded: list[int]) -> selffit.FitRows:
    def load(index: np.ndarray) -> np.ndarray:
        loaded.append(len(index))
        return rows[index]

    grey, colour = thumbnails.thumbnails(rows)
    return selffit.FitRows(load, grey, colour, features.textures(grey), len(rows), 0.0)


def test_synthetic_pairs_made_in_batches_are_the_pairs_made_all_at_once():
    from dcgan_data.dedup.verify import scored_with_features

    rows = photo_crops(30, seed=7)
    sampled = np.arange(1, 30, 2)
    after_reference = np.random.default_rng(3)
    reference = _synthetic_pairs_all_at_once(sampled, _fit_rows(rows, []),
                                             scored_with_features, after_reference)
    for batch in (1, 4, 64):
        loaded: list[int] = []
        rng = np.random.default_rng(3)
        made = selffit.synthetic_pairs(sampled, _fit_rows(rows, loaded), scored_with_features,
                                       rng, batch=batch)
        assert all(np.array_equal(x, y) for x, y in zip(made, reference, strict=True)), batch
        assert max(loaded) == min(batch, len(sampled)) and sum(loaded) == len(sampled)
        # the fit goes on drawing from the same generator: it must be where it was
        assert rng.bit_generator.state == after_reference.bit_generator.state


def test_synthetic_pairs_hold_a_batch_of_rows_not_all():
    import tracemalloc

    rows = np.repeat(photo_crops(4, size=128, seed=8), 32, axis=0)  # 128 rows of 128 px
    data = _fit_rows(rows, [])

    def no_score(grey, colour, a, b):
        return np.zeros(len(a), np.float32), np.zeros((len(a), len(features.FEATURES)))

    def peak(sampled: int) -> int:
        tracemalloc.start()
        try:
            selffit.synthetic_pairs(np.arange(sampled), data, no_score,
                                    np.random.default_rng(0), batch=2)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    peak(128)  # every edit's first call (caches), outside the measure
    more, fewer, row = peak(128), peak(32), rows[0].nbytes
    # each further row adds its thumbnails (~1/10 of a row; ~1/4 measured), not the row and
    # its four views (~9 rows, all at once)
    assert more - fewer < 96 * row, (more, fewer, row)


def test_the_held_back_summary_keys_are_their_by_kind_entries():
    from dcgan_data.dedup.report import SelfFit

    by_kind = dict(zip(selffit.KINDS, (0.91, 0.02, 0.01, None), strict=True))
    fitted = SelfFit(rows_sampled=10, held_back_pass_rate_by_kind=by_kind)
    assert fitted.held_back_recall == by_kind[selffit.KINDS[0]] == 0.91
    assert fitted.held_back_look_alike_pass_rate == by_kind[selffit.KINDS[1]] == 0.02
    written = fitted.to_json()
    # the keys old reports have, in their order, both read back from the by-kind entries
    assert list(written) == [
        "rows_sampled", "pairs_fitted", "pairs_held_back", "threshold",
        "threshold_by_expected_share", "threshold_by_hard_negatives", "held_back_recall",
        "held_back_look_alike_pass_rate", "held_back_pass_rate_by_kind", "candidate_copy_share",
        "expected_false_pairs", "expected_false_share", "pairs_accepted"]
    assert written["held_back_recall"] == 0.91 and written["held_back_look_alike_pass_rate"] == 0.02
    # an old report's own copies of them are read as the by-kind entries they repeat
    read = SelfFit.from_json({**written, "held_back_recall": 0.5}, strict=True)
    assert read.held_back_recall == 0.91 and read.to_json() == written
