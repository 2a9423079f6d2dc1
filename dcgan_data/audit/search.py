"""Candidates: one pass over every training row finds, for each query, the rows sharing any
of its probe hashes and its nearest rows by code values. Nothing is kept per training row but
its hash, so memory is bounded by the number of queries."""

from __future__ import annotations

import numpy as np

from dcgan_data.audit.features import Features, probe_keys
from dcgan_data.core.errors import DcganDataError
from dcgan_data.core.files import progress
from dcgan_data.core.processes import one_torch_thread
from dcgan_data.core.shards import ShardSet
from dcgan_data.core.stage import Failures, completed_units
from dcgan_data.engines.runner import Engine
from dcgan_data.hashmodel import hashing

MAX_HASH_CANDIDATES = 16  # rows sharing a probe hash, per query (fewest differing bits first)


class Candidates:
    """The running candidates of every query while the training rows stream past."""

    def __init__(self, query_hashes: np.ndarray, query_probes: np.ndarray,
                 query_codes: np.ndarray, neighbours: int, own_rows: np.ndarray | None = None):
        self.hashes = query_hashes
        # the training row each query is (-1: none): never its own candidate
        self.own = np.full(len(query_hashes), -1, np.int64) if own_rows is None else own_rows
        self.codes = np.ascontiguousarray(query_codes, np.float32)
        keys = probe_keys(query_probes).ravel()
        self.order = np.argsort(keys, kind="stable")
        self.sorted_keys = keys[self.order]
        self.moves = query_probes.shape[1]
        self.k = neighbours
        n = len(query_hashes)
        self.knn_rows = np.full((n, 0), -1, np.int64)
        self.knn_dist = np.full((n, 0), np.inf, np.float32)
        self.hash_pairs = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))

    def add(self, rows: np.ndarray, hashes: np.ndarray, probes: np.ndarray,
            codes: np.ndarray) -> None:
        """Training rows `rows` (global indices) with their features."""
        if not len(rows):
            return
        self._add_hash_matches(rows, hashes, probes)
        self._add_neighbours(rows, codes)

    def _add_hash_matches(self, rows: np.ndarray, hashes: np.ndarray, probes: np.ndarray
                          ) -> None:
        keys = probe_keys(probes).ravel()
        lo = np.searchsorted(self.sorted_keys, keys, "left")
        hi = np.searchsorted(self.sorted_keys, keys, "right")
        hits = np.flatnonzero(hi > lo)
        if not len(hits):
            return
        counts = (hi - lo)[hits]
        slots = np.repeat(lo[hits], counts) + _ranges(counts)
        row_local = np.repeat(hits // self.moves, counts)
        query = self.order[slots] // self.moves
        other = rows[row_local] != self.own[query]
        if not other.any():
            return
        query, row_local = query[other], row_local[other]
        distance = hashing.popcount(self.hashes[query] ^ hashes[row_local])
        q, r, d = self.hash_pairs
        self.hash_pairs = _fewest_per_query(np.r_[q, query], np.r_[r, rows[row_local]],
                                            np.r_[d, distance], MAX_HASH_CANDIDATES)

    def _add_neighbours(self, rows: np.ndarray, codes: np.ndarray) -> None:
        import faiss

        k = min(self.k + 1, len(rows))  # one more: a query's own row is dropped
        dist, local = faiss.knn(self.codes, np.ascontiguousarray(codes, np.float32), k)
        found = rows[local]
        own = found == self.own[:, None]
        found[own], dist[own] = -1, np.inf
        merged_rows = np.concatenate([self.knn_rows, found], axis=1)
        merged_dist = np.concatenate([self.knn_dist, dist], axis=1)
        best = np.argsort(merged_dist, axis=1, kind="stable")[:, : self.k]
        self.knn_rows = np.take_along_axis(merged_rows, best, 1)
        self.knn_dist = np.take_along_axis(merged_dist, best, 1)

    def per_query(self) -> np.ndarray:
        """(N, M) candidate rows of each query, -1 padded, each row at most once."""
        q, r, _ = self.hash_pairs
        width = self.knn_rows.shape[1] + MAX_HASH_CANDIDATES
        table = np.full((len(self.hashes), width), -1, np.int64)
        table[:, : self.knn_rows.shape[1]] = self.knn_rows
        if len(q):
            rank = _rank_within(q)
            table[q, self.knn_rows.shape[1] + rank] = r
        table.sort(axis=1)
        table[:, 1:][table[:, 1:] == table[:, :-1]] = -1  # a row found both ways counts once
        return table


def _ranges(counts: np.ndarray) -> np.ndarray:
    """0..c-1 for each count c, concatenated."""
    ends = np.cumsum(counts)
    return np.arange(ends[-1]) - np.repeat(ends - counts, counts)


def _rank_within(groups: np.ndarray) -> np.ndarray:
    """Position of each element among the elements of its (sorted, contiguous) group."""
    starts = np.r_[0, np.flatnonzero(groups[1:] != groups[:-1]) + 1]
    sizes = np.diff(np.r_[starts, len(groups)])
    return _ranges(sizes)


def _fewest_per_query(q: np.ndarray, r: np.ndarray, d: np.ndarray, keep: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """At most `keep` (query, row) pairs per query, fewest differing bits first, sorted by
    query; a pair found by several probes counts once."""
    order = np.lexsort((r, d, q))
    q, r, d = q[order], r[order], d[order]
    first = np.r_[True, (q[1:] != q[:-1]) | (r[1:] != r[:-1])]
    q, r, d = q[first], r[first], d[first]
    kept = _rank_within(q) < keep
    return q[kept], r[kept], d[kept]


def scan_training(shards: ShardSet, features: Features, candidates: Candidates,
                  engine: Engine | None = None) -> np.ndarray:
    """Stream every training row through `candidates`; return the (N, 16) hashes of all
    rows (for the report's hash distances). The features are computed as units on `engine`
    (slices of up to hashing.CHUNK rows of one shard) and taken in unit order, so every
    engine gives the same candidates."""
    hashes = np.zeros((len(shards), hashing.HASH_BYTES), np.uint8)
    units = hashing.scan_units(shards)
    arrived: dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    taken = 0
    lost = Failures()
    with progress(total=len(shards), desc="scan training set") as bar:
        for unit, result in completed_units(features_unit, units, engine, lost, _rows_of,
                                            (features, shards)):
            if lost.counts:
                break
            arrived[unit] = result
            while taken < len(units) and units[taken] in arrived:
                s, lo, hi = units[taken]
                chunk_hashes, chunk_probes, chunk_codes = arrived.pop(units[taken])
                rows = shards.offsets[s] + np.arange(lo, hi)
                hashes[rows] = chunk_hashes
                candidates.add(rows, chunk_hashes, chunk_probes, chunk_codes)
                bar.update(hi - lo)
                taken += 1
    if lost.counts:  # a row left out could hide a copy
        first = next(iter(lost.examples.values()))[0]
        raise DcganDataError(f"scan training set: failed every attempt on {first}")
    return hashes


def _rows_of(unit: tuple[int, int, int]) -> str:
    s, lo, hi = unit
    return f"rows {lo}..{hi - 1} of shard {s}"


def features_unit(context: tuple[Features, ShardSet], unit: tuple[int, int, int]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows lo..hi of shard s, unit (s, lo, hi): hashes, probe hashes and code values."""
    features, shards = context
    s, lo, hi = unit
    with one_torch_thread():
        return features(hashing.to_hash_crops(np.asarray(shards.shard(s)[lo:hi])))


def found_by_hash(candidates: Candidates, nearest: np.ndarray) -> np.ndarray:
    """Whether each sample's nearest row was among its probe-hash matches."""
    q, r, _ = candidates.hash_pairs
    hit = np.zeros(len(nearest), bool)
    mine = q < len(nearest)
    hit[q[mine][nearest[q[mine]] == r[mine]]] = True
    return hit


def hash_distances(query_hashes: np.ndarray, train_hashes: np.ndarray, nearest: np.ndarray
                   ) -> np.ndarray:
    """Differing bits between each query's hash and its nearest row's (-1: no nearest row)."""
    distance = np.full(len(nearest), -1, np.int64)
    found = np.flatnonzero(nearest >= 0)
    distance[found] = hashing.popcount(query_hashes[found] ^ train_hashes[nearest[found]])
    return distance
