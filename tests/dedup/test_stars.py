"""Verified groups (`dcgan_data.dedup.stars`): stars of verified pairs, one keeper each."""

import numpy as np

from dcgan_data.dedup.stars import ranked, verified_groups


class FakeVerifier:
    """Verifies only the listed pairs."""

    threshold = 0.0

    def __init__(self, good: set[tuple[int, int]]):
        self.good = good
        self.scored = 0

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        self.scored += len(a)
        return np.array([1.0 if (min(x, y), max(x, y)) in self.good else -1.0
                         for x, y in zip(a.tolist(), b.tolist(), strict=True)], np.float32)


def test_verified_groups_never_remove_through_a_chain():
    # 0-1 and 1-2 verified but 0-2 not: 2 must not be removed as a duplicate of 0;
    # 3-4 and 4-5 and 3-5: one group kept as 3
    good = {(0, 1), (1, 2), (3, 4), (4, 5), (3, 5)}
    a, b = np.array([0, 1, 3, 4]), np.array([1, 2, 4, 5])
    verifier = FakeVerifier(good)
    kept_as, score, stats = verified_groups(7, a, b, verifier(a, b), verifier,
                                               np.ones(7), "first", 7)
    assert kept_as.tolist() == [0, 0, 2, 3, 3, 3, 6]
    assert stats["rechecked_pairs"] == 2 and stats["stars"] == 2  # (0,2), (3,5)
    assert np.isinf(score[[0, 2, 3, 6]]).all() and (score[[1, 4, 5]] == 1).all()


class ScoredVerifier(FakeVerifier):
    """Scores of listed pairs as given; every other pair fails."""

    def __init__(self, scores: dict[tuple[int, int], float]):
        super().__init__(set())
        self.scores = scores

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        self.scored += len(a)
        return np.array([self.scores.get((min(x, y), max(x, y)), -1.0)
                         for x, y in zip(a.tolist(), b.tolist(), strict=True)], np.float32)


def test_a_copy_stays_with_its_original_among_look_alikes():
    # 1 and 2 are a copy pair (strong); 0, the first row, is a look-alike of 1 only: the
    # first row is not the keeper of the group, as 2 fails against it; 1 is, and keeps both
    verifier = ScoredVerifier({(1, 2): 5.0, (0, 1): 2.0})
    a, b = np.array([0, 1, 0]), np.array([1, 2, 2])
    kept_as, score, stats = verified_groups(3, a, b, verifier(a, b), verifier,
                                                   np.ones(3), "first", 3)
    assert kept_as.tolist() == [1, 1, 1] and stats["kept_centre"] == 1
    assert score.tolist() == [2.0, np.inf, 5.0]


def test_the_policy_keeper_keeps_a_star_whose_members_all_match_it():
    verifier = ScoredVerifier({(1, 2): 5.0, (0, 1): 2.0, (0, 2): 1.5})
    a, b = np.array([0, 1]), np.array([1, 2])
    kept_as, _, stats = verified_groups(3, a, b, verifier(a, b), verifier,
                                               np.ones(3), "first", 3)
    assert kept_as.tolist() == [0, 0, 0] and stats["kept_centre"] == 0
    assert stats["rechecked_pairs"] == 1  # (0, 2): not a candidate, checked for the keeper


def test_an_against_row_stays_the_keeper_of_its_star():
    # row 3 is of the --against set: kept; 1 matches it and goes, 2 fails against it and stays
    verifier = ScoredVerifier({(1, 2): 5.0, (1, 3): 2.0})
    a, b = np.array([1, 1, 2]), np.array([2, 3, 3])
    kept_as, _, _ = verified_groups(4, a, b, verifier(a, b), verifier, np.ones(4),
                                           "first", 3)
    assert kept_as.tolist() == [0, 3, 2, 3]


def test_stars_of_one_image_merge_when_all_rows_match_one_keeper():
    # two stars, {0, 1} and {2, 3}, linked by the pair (1, 2)
    edges = {(0, 1): 5.0, (2, 3): 6.0, (1, 2): 2.0}
    a, b = np.array([0, 2, 1]), np.array([1, 3, 2])
    verifier = ScoredVerifier({**edges, (0, 2): 3.0, (0, 3): 3.0})
    kept_as, _, stats = verified_groups(4, a, b, verifier(a, b), verifier, np.ones(4),
                                               "first", 4)
    assert kept_as.tolist() == [0, 0, 0, 0] and stats["merged_groups"] == 1
    # 3 does not match 0: the first star joins the second instead, whose keeper both match
    verifier = ScoredVerifier({**edges, (0, 2): 3.0})
    kept_as, _, stats = verified_groups(4, a, b, verifier(a, b), verifier, np.ones(4),
                                               "first", 4)
    assert kept_as.tolist() == [2, 2, 2, 2] and stats["merged_groups"] == 1
    # neither way: the two stars stay apart
    verifier = ScoredVerifier(edges)
    kept_as, _, stats = verified_groups(4, a, b, verifier(a, b), verifier, np.ones(4),
                                               "first", 4)
    assert kept_as.tolist() == [0, 0, 2, 2] and stats["merged_groups"] == 0


def test_a_merge_whose_keepers_do_not_match_looks_at_no_other_row():
    # stars {0, 1, 2, 3} and {4, 5, 6, 7}, linked by (3, 4); their keepers 0 and 4 differ
    edges = {**{(0, i): 5.0 for i in (1, 2, 3)}, **{(4, i): 5.0 for i in (5, 6, 7)},
             (3, 4): 2.0}
    a, b = np.array([p[0] for p in edges]), np.array([p[1] for p in edges])
    verifier = ScoredVerifier(edges)
    kept_as, _, stats = verified_groups(8, a, b, verifier(a, b), verifier, np.ones(8),
                                        "first", 8)
    assert kept_as.tolist() == [0, 0, 0, 0, 4, 4, 4, 4]
    assert stats["rechecked_pairs"] == 1  # the keepers' pair, either way; no member's


def test_rows_verified_against_an_against_row_are_removed_in_its_favour():
    # row 3 is of the --against set; 0 matches it, though 0 is the centre of a star with 1
    verifier = ScoredVerifier({(0, 1): 5.0, (2, 3): 6.0, (0, 3): 2.0})
    a, b = np.array([0, 2, 0]), np.array([1, 3, 3])
    kept_as, _, _ = verified_groups(4, a, b, verifier(a, b), verifier, np.ones(4), "first", 3)
    assert kept_as[0] == 3 and kept_as[2] == 3 and kept_as[3] == 3
    # five stars of ours, each with a row matching one --against row: all those rows go
    edges = {}
    for i in range(5):
        edges[(2 * i, 2 * i + 1)] = 5.0
        edges[(2 * i, 10)] = 2.0 + 0.1 * i
    verifier = ScoredVerifier(edges)
    a, b = np.array([p[0] for p in edges]), np.array([p[1] for p in edges])
    kept_as, _, _ = verified_groups(11, a, b, verifier(a, b), verifier, np.ones(11), "first",
                                    10)
    assert all(kept_as[2 * i] == 10 for i in range(5))


def test_a_merge_that_fails_does_not_block_another():
    # stars {0, 1}, {2, 3}, {4, 5}: the strongest link (1, 2) cannot merge, (0, 4) can
    verifier = ScoredVerifier({(0, 1): 6.0, (2, 3): 6.0, (4, 5): 6.0, (1, 2): 4.0, (0, 4): 3.0,
                               (0, 5): 2.0})
    a, b = np.array([0, 2, 4, 1, 0]), np.array([1, 3, 5, 2, 4])
    kept_as, _, _ = verified_groups(6, a, b, verifier(a, b), verifier, np.ones(6), "first", 6)
    assert kept_as.tolist() == [0, 0, 2, 2, 0, 0]


def test_pairs_are_taken_most_alike_first_when_a_likeness_is_given():
    # 1 is a copy of 0; 2 a look-alike of 1 with higher log-odds but lower likeness. By
    # log-odds, 1's star takes 2 and then 0, and keeps 1 for all three; by likeness, 1 joins
    # its original first and 2, not verified against 0, stays
    verifier = ScoredVerifier({(1, 2): 5.0, (0, 1): 3.0})
    a, b = np.array([1, 0]), np.array([2, 1])
    alike = {(1, 2): 0.7, (0, 1): 0.99}

    def likeness(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.array([alike[(min(i, j), max(i, j))] for i, j in zip(x, y, strict=True)])

    by_log_odds = verified_groups(3, a, b, verifier(a, b), verifier, np.ones(3), "first", 3)[0]
    by_likeness = verified_groups(3, a, b, verifier(a, b), verifier, np.ones(3), "first", 3,
                                  likeness)[0]
    assert by_log_odds.tolist() == [1, 1, 1]
    assert by_likeness.tolist() == [0, 0, 2]


def test_only_pairs_that_share_a_row_get_the_fine_look():
    verifier = ScoredVerifier({(0, 1): 3.0, (1, 2): 2.0, (3, 4): 4.0})
    a, b = np.array([0, 1, 3]), np.array([1, 2, 4])
    looked = []

    def likeness(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        looked.extend(zip(x.tolist(), y.tolist(), strict=True))
        return np.full(len(x), 0.5)

    kept_as = verified_groups(5, a, b, verifier(a, b), verifier, np.ones(5), "first", 5,
                              likeness)[0]
    assert sorted(looked) == [(0, 1), (1, 2)]  # (3, 4) shares no row: its order decides nothing
    assert kept_as.tolist() == [0, 0, 2, 3, 3]


def test_pairs_rank_by_likeness_then_log_odds_then_the_earlier_first():
    rank = ranked(np.array([0.5, 0.5, 0.5, 0.9]), np.array([1.0, 2.0, 1.0, 0.0]))
    assert np.argsort(-rank, kind="stable").tolist() == [3, 1, 0, 2]
