"""Grouping rows by hash, as in the DCGAN paper.

Grouping equal hashes is one pass over a dict (linear time). With a radius, equal hashes
are collapsed first, then a multi-index finds every pair of distinct hashes within R
exactly: split the 128 bits into R+1 blocks; two codes that differ in at most R bits agree
on at least one block (pigeonhole), so comparing codes that share a block misses nothing.
With probes, images sharing any probe hash are grouped too (`partition.shared_hash_pairs`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dcgan_data.dedup import partition
from dcgan_data.hashmodel import hashing

# Equal hashes only, as in the paper: precision ~0.99 on near duplicates of real photos;
# radius 1 finds ~40% more pairs but precision drops to ~0.985 (bench/RESULTS.md).
LARGE_BUCKET = 4096  # buckets this big are compared by faiss rather than numpy


def exact_groups(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group equal hashes in one pass. Returns (inverse, first): row i has distinct code
    inverse[i], and first[u] is the first row holding code u."""
    seen: dict[bytes, int] = {}
    rows = hashes.view(np.dtype((np.void, hashes.shape[1]))).ravel().tolist()
    inverse = np.fromiter((seen.setdefault(code, len(seen)) for code in rows), np.int64,
                          count=len(rows))
    first = np.full(len(seen), len(rows), np.int64)
    np.minimum.at(first, inverse, np.arange(len(rows)))
    return inverse, first


def _blocks(bits: int, radius: int) -> list[tuple[int, int]]:
    edges = np.linspace(0, bits, radius + 2).round().astype(int)
    return list(zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True))


def _block_keys(codes: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """bits lo..hi of each code as one integer (hi - lo <= 64), a chunk of rows at a time."""
    weights = (np.uint64(1) << np.arange(hi - lo, dtype=np.uint64)[::-1])
    keys = np.empty(len(codes), np.uint64)
    for start in range(0, len(codes), 1 << 16):
        bits = np.unpackbits(codes[start : start + (1 << 16)], axis=1)[:, lo:hi]
        keys[start : start + len(bits)] = (bits.astype(np.uint64) * weights).sum(
            axis=1, dtype=np.uint64)
    return keys


def _distances(codes: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return hashing.popcount(codes[a] ^ codes[b])


def _pairs_in_buckets(codes: np.ndarray, keys: np.ndarray, radius: int
                      ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Pairs of codes with equal keys and distance <= radius."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    sizes = np.diff(np.r_[starts, len(keys)])
    found_a, found_b = [], []
    # small buckets: compare each code with the next k codes of its bucket, for every k
    small = np.repeat(sizes <= LARGE_BUCKET, sizes)
    for k in range(1, int(sizes[sizes <= LARGE_BUCKET].max(initial=1))):
        same = (sorted_keys[k:] == sorted_keys[:-k]) & small[k:]
        left = order[:-k][same]
        right = order[k:][same]
        if not len(left):
            break
        near = _distances(codes, left, right) <= radius
        found_a.append(left[near])
        found_b.append(right[near])
    # large buckets (skewed bits): exact brute force within the bucket, in faiss
    for start, size in zip(starts[sizes > LARGE_BUCKET], sizes[sizes > LARGE_BUCKET],
                           strict=True):
        members = order[start : start + size]
        a, b = _faiss_range_pairs(codes[members], radius)
        found_a.append(members[a])
        found_b.append(members[b])
    return found_a, found_b


def _faiss_range_pairs(codes: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    index = faiss.IndexBinaryFlat(codes.shape[1] * 8)
    index.add(np.ascontiguousarray(codes))
    # faiss keeps distances strictly below its radius: ask for radius + 1 to get <= radius
    lims, _, neighbours = index.range_search(np.ascontiguousarray(codes), radius + 1)
    queries = np.repeat(np.arange(len(codes)), np.diff(lims.astype(np.int64)))
    keep = queries < neighbours
    return queries[keep], neighbours[keep].astype(np.int64)


def radius_pairs(codes: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Every pair (a < b) of distinct codes within Hamming distance `radius`, exactly."""
    if radius <= 0 or len(codes) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    found_a, found_b = [], []
    for lo, hi in _blocks(codes.shape[1] * 8, radius):
        a, b = _pairs_in_buckets(codes, _block_keys(codes, lo, hi), radius)
        found_a += a
        found_b += b
    if not found_a:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    a, b = np.concatenate(found_a), np.concatenate(found_b)
    low, high = np.minimum(a, b), np.maximum(a, b)
    unique = np.unique(low * len(codes) + high)  # a pair found by several blocks counts once
    return unique // len(codes), unique % len(codes)


def connected(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected components of n nodes joined by edges (a, b): each node's smallest member."""
    label = np.arange(n)
    while len(a):
        low = np.minimum(label[a], label[b])
        before = label.copy()
        np.minimum.at(label, a, low)
        np.minimum.at(label, b, low)
        label = label[label]  # pointer jumping: halves the depth each round
        while not np.array_equal(label, label[label]):
            label = label[label]
        if np.array_equal(label, before):
            break
    return label


def find_groups(hashes: np.ndarray, radius: int, probes: np.ndarray | None = None,
                **partitioning: Any) -> np.ndarray:
    """Group label of every row: the first row of its group (equal hashes, hashes within
    `radius`, or rows sharing a probe hash, joined by chains of such pairs). Unverified:
    the paper's rule (with probes and radius as options). `partitioning`: the partitions,
    engine and spill_dir of `partition.shared_hash_pairs`."""
    inverse, first = exact_groups(hashes)
    a, b = radius_pairs(hashes[first], radius)
    if probes is not None:
        rows_a, rows_b = partition.shared_hash_pairs(probes, band=1, **partitioning)
        a, b = np.concatenate([a, inverse[rows_a]]), np.concatenate([b, inverse[rows_b]])
    code_label = connected(len(first), a, b)
    return first[code_label][inverse]


def unique_pairs(a: np.ndarray, b: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct unordered pairs (low < high) of the pairs (a, b), self-pairs dropped."""
    low, high = np.minimum(a, b), np.maximum(a, b)
    keep = low != high
    unique = np.unique(low[keep].astype(np.int64) * n + high[keep])
    return unique // n, unique % n
