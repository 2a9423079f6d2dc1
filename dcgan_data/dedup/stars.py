"""Verified groups: which row is kept in place of each row, from the verified candidate
pairs. Rows join stars (no chains through look-alikes), each star keeps one row that every
row removed for it is verified against, and stars of one image are merged."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

MERGE_ROUNDS = 3  # rounds of joining groups whose rows all match the other's keeper


Likeness = Callable[[np.ndarray, np.ndarray], np.ndarray]  # pairs (a[i], b[i]) -> likeness


class Scorer(Protocol):
    """Log-odds of pairs of rows (the verifier, or the model fitted at run time)."""

    threshold: float

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray: ...


def verified_groups(n: int, a: np.ndarray, b: np.ndarray, scores: np.ndarray,
                    verifier: Scorer, area: np.ndarray, keep: str, protected: int,
                    likeness: Likeness | None = None
                    ) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """The row kept in place of each row, and the log-odds of each row against its keeper.

    Verified pairs, most alike first (by LIKENESS, the fine look, when given; else by their
    log-odds), join rows into stars (`stars`): a row joins the star of the row it matches
    best, never a chain through look-alikes, so in a region of
    look-alikes a copy stays with its original; a row left alone that matches a star's
    member joins that star. Each star keeps one row (`star_keepers`), and stars linked by a
    verified pair merge when all the rows of one match the other's keeper (`merged`). A row
    is removed only when it is verified against the row kept in its place (scored now if
    that pair was not a candidate); a chain of verified pairs is never enough.
    """
    passed = scores >= verifier.threshold
    passed &= (a < protected) | (b < protected)  # pairs of two --against rows decide nothing
    a, b, scores = a[passed], b[passed], scores[passed]
    keys = np.minimum(a, b) * n + np.maximum(a, b)
    edge_score = dict(zip(keys.tolist(), scores.tolist(), strict=True))
    strength = scores if likeness is None else ranked(shared_likeness(n, a, b, likeness), scores)
    priority = keep_priority(area, keep, protected)
    stats = {"stars": 0, "rechecked_pairs": 0, "kept_centre": 0, "merged_groups": 0}
    centre = joined_to_best_member(stars(n, a, b, strength, priority, protected), a, b,
                                   strength, protected)
    kept_as = star_keepers(centre, priority, protected, verifier, edge_score, stats)
    kept_as = merged(kept_as, a, b, strength, priority, protected, verifier, edge_score, stats)
    removed = np.flatnonzero(kept_as != np.arange(n))
    row_score = np.full(n, np.inf, np.float32)
    row_score[removed] = pair_scores(removed, kept_as[removed], n, verifier, edge_score, stats)
    return kept_as, row_score, stats


def stars(n: int, a: np.ndarray, b: np.ndarray, strength: np.ndarray, priority: np.ndarray,
          protected: int) -> np.ndarray:
    """Each row's star centre (itself when it is in no star): pairs with an --against row
    first, then strongest first; a pair of two rows in no star starts one, centred on the row
    of lower `priority`; a row joins a star only through a pair with its centre. Every member
    is a verified pair with its centre, so look-alikes never chain, and a row joins the star
    of its best match whenever that row is a centre or still free: an exact copy, whose pair
    with its original is the strongest of both, stays with it."""
    centre, joined = list(range(n)), [False] * n
    # pairs with an --against row first: each of our rows verified against one joins its star
    order = np.lexsort((-strength, (a < protected) & (b < protected)))
    rank = priority.tolist()
    for u, v in zip(a[order].tolist(), b[order].tolist(), strict=True):
        if not joined[u] and not joined[v]:
            first, second = (u, v) if rank[u] <= rank[v] else (v, u)
            centre[second] = first
            joined[u] = joined[v] = True
        elif not joined[u] and centre[v] == v:
            centre[u], joined[u] = v, True
        elif not joined[v] and centre[u] == u:
            centre[v], joined[v] = u, True
    return np.array(centre, np.int64)


def joined_to_best_member(centre: np.ndarray, a: np.ndarray, b: np.ndarray,
                          strength: np.ndarray, protected: int) -> np.ndarray:
    """Stars grown by the rows left alone that match a member of a star: each joins the star
    of its best-matching member (whether it stays is decided against the star's keeper)."""
    alone = np.bincount(centre, minlength=len(centre))[centre] == 1
    alone[protected:] = False  # an --against row is kept: joining would only displace a keeper
    lone = np.concatenate([a[alone[a] & ~alone[b]], b[alone[b] & ~alone[a]]])
    partner = np.concatenate([b[alone[a] & ~alone[b]], a[alone[b] & ~alone[a]]])
    lone_strength = np.concatenate([strength[alone[a] & ~alone[b]],
                                    strength[alone[b] & ~alone[a]]])
    order = np.lexsort((-lone_strength, lone))
    lone, partner = lone[order], partner[order]
    best = np.ones(len(lone), bool)
    best[1:] = lone[1:] != lone[:-1]
    centre = centre.copy()
    centre[lone[best]] = centre[partner[best]]
    return centre


def star_keepers(centre: np.ndarray, priority: np.ndarray, protected: int, verifier: Scorer,
                 edge_score: dict[int, float], stats: dict[str, int]) -> np.ndarray:
    """The row kept in place of each row: each star's preferred row (the keep policy's), or
    its centre when more members are verified against the centre (never in place of an
    --against row: it is not ours to drop); members not verified against it stay."""
    n = len(centre)
    in_star = np.flatnonzero(np.bincount(centre, minlength=n)[centre] > 1)
    preferred = kept_first(centre, priority)
    to_preferred, to_centre = (pair_scores(in_star, keeper[in_star], n, verifier, edge_score,
                                           stats) for keeper in (preferred, centre))
    votes = [np.bincount(centre[in_star], scores >= verifier.threshold, minlength=n)
             for scores in (to_preferred, to_centre)]
    by_centre = (votes[1] > votes[0]) & (preferred < protected)
    keeper = np.where(by_centre[centre], centre, preferred)
    score = np.where(by_centre[centre[in_star]], to_centre, to_preferred)
    removed = in_star[(keeper[in_star] != in_star) & (score >= verifier.threshold)]
    kept_as = np.arange(n)
    kept_as[removed] = keeper[removed]
    stats["stars"] += len(np.unique(centre[in_star]))
    stats["kept_centre"] += int(by_centre.sum())
    return kept_as


def merged(kept_as: np.ndarray, a: np.ndarray, b: np.ndarray, strength: np.ndarray,
           priority: np.ndarray, protected: int, verifier: Scorer,
           edge_score: dict[int, float], stats: dict[str, int]) -> np.ndarray:
    """Groups joined when a verified pair links them and every row of one is verified
    against the keeper of the other (checked now where the pair was not a candidate): the
    other's keeper stays (the policy's choice first, the other way round if that fails).
    Copies of one image split over two stars come together; a star of look-alikes whose
    rows do not all match the other keeper stays apart. A few rounds, each group in at most
    one merge a round."""
    kept_as = kept_as.copy()
    failed: set[tuple[int, int]] = set()  # keeper pairs tried both ways (not retried)
    for _ in range(MERGE_ROUNDS):
        pairs = group_links(kept_as, a, b, strength, failed)
        if not len(pairs):
            break
        preferred_first = priority[pairs[:, 0]] <= priority[pairs[:, 1]]
        tries = np.where(preferred_first[:, None], pairs, pairs[:, ::-1])  # (stays, absorbed)
        done = absorbed(kept_as, tries, protected, verifier, edge_score, stats)
        rest = tries[~np.isin(tries[:, 1], done)]
        done_reversed = absorbed(kept_as, rest[:, ::-1], protected, verifier, edge_score,
                                 stats)
        stats["merged_groups"] += len(done) + len(done_reversed)
        lost = rest[~np.isin(rest[:, 0], done_reversed)]
        failed.update(zip(lost.min(1).tolist(), lost.max(1).tolist(), strict=True))
    return kept_as


def absorbed(kept_as: np.ndarray, tries: np.ndarray, protected: int,
             verifier: Scorer, edge_score: dict[int, float],
             stats: dict[str, int]) -> np.ndarray:
    """Merges each pair (keeper that stays, keeper of the group absorbed) of TRIES whose
    absorbed rows are all verified against the keeper that stays, in KEPT_AS; returns the
    keepers absorbed."""
    n = len(kept_as)
    tries = tries[tries[:, 1] < protected]  # an --against row is never absorbed
    # the keepers first: a group whose own keeper fails is not merged, and the rest of its
    # rows need no look
    keepers = pair_scores(tries[:, 1], tries[:, 0], n, verifier, edge_score, stats)
    tries = tries[keepers >= verifier.threshold]
    target = np.full(n, -1)
    target[tries[:, 1]] = tries[:, 0]
    rows = np.flatnonzero(target[kept_as] >= 0)
    ok = pair_scores(rows, target[kept_as[rows]], n, verifier, edge_score, stats) >= \
        verifier.threshold
    failed = np.zeros(n, bool)
    failed[kept_as[rows[~ok]]] = True
    joined = rows[~failed[kept_as[rows]]]
    done = np.unique(kept_as[joined])
    kept_as[joined] = target[kept_as[joined]]
    return done


def group_links(kept_as: np.ndarray, a: np.ndarray, b: np.ndarray, strength: np.ndarray,
                failed: set[tuple[int, int]]) -> np.ndarray:
    """(P, 2) pairs of group keepers to try to merge: links strongest first, each group in at
    most one pair, pairs that failed before left out."""
    ga, gb = kept_as[a], kept_as[b]
    link = ga != gb
    order = np.argsort(-strength[link], kind="stable")
    busy = set()
    pairs = []
    for g, h in zip(ga[link][order].tolist(), gb[link][order].tolist(), strict=True):
        if g not in busy and h not in busy and (min(g, h), max(g, h)) not in failed:
            busy.update((g, h))
            pairs.append((g, h))
    return np.array(pairs, np.int64).reshape(-1, 2)


def pair_scores(a: np.ndarray, b: np.ndarray, n: int, verifier: Scorer,
                edge_score: dict[int, float], stats: dict[str, int]) -> np.ndarray:
    """The log-odds of pairs (a, b) of N rows: known ones from EDGE_SCORE (keyed low * n +
    high), the rest scored now (counted as rechecked) and remembered there. A row paired
    with itself scores +inf."""
    keys = (np.minimum(a, b) * n + np.maximum(a, b)).tolist()
    known = np.array([edge_score.get(k, np.nan) for k in keys], np.float32)
    known[a == b] = np.inf
    unknown = np.isnan(known)
    if unknown.any():
        known[unknown] = verifier(a[unknown], b[unknown])
        edge_score.update(zip(np.asarray(keys)[unknown].tolist(), known[unknown].tolist(),
                              strict=True))
    stats["rechecked_pairs"] += int(unknown.sum())
    return known


def shared_likeness(n: int, a: np.ndarray, b: np.ndarray, likeness: Likeness) -> np.ndarray:
    """The likeness of the pairs that share a row with another pair; the others, whose order
    decides nothing, get 1 without a look."""
    degree = np.bincount(np.concatenate([a, b]), minlength=n)
    shared = (degree[a] > 1) | (degree[b] > 1)
    alike = np.ones(len(a), np.float64)
    if shared.any():
        alike[shared] = likeness(a[shared], b[shared])
    return alike


def ranked(first: np.ndarray, then: np.ndarray) -> np.ndarray:
    """Each pair's rank (0 the least) by FIRST, equal ones by THEN, then the earlier pair
    above (as a stable sort, strongest first, takes them)."""
    rank = np.empty(len(first), np.float64)
    rank[np.lexsort((-np.arange(len(first)), then, first))] = np.arange(len(first))
    return rank


def keep_priority(area: np.ndarray, keep: str, protected: int) -> np.ndarray:
    """Each row's rank as a keeper (0 first): rows >= `protected` belong to the --against set
    and come first (they are not ours to drop); then `keep`: the first row, or the one of
    largest source resolution (ties: the first)."""
    index = np.arange(len(area))
    ours = index < protected
    rank = -area.astype(np.int64) if keep == "largest" else np.zeros(len(area), np.int64)
    priority = np.empty(len(area), np.int64)
    priority[np.lexsort((index, np.where(ours, rank, 0), ours))] = index
    return priority


def kept_first(labels: np.ndarray, priority: np.ndarray) -> np.ndarray:
    """The position of each row's group's keeper: the row of lowest priority in its group."""
    order = np.lexsort((priority, labels))
    sorted_labels = labels[order]
    starts = np.r_[True, sorted_labels[1:] != sorted_labels[:-1]]
    keeper_of_run = order[starts][np.cumsum(starts) - 1]
    kept = np.empty(len(labels), np.int64)
    kept[order] = keeper_of_run
    return kept
