"""Candidate pairs from every generator: shared hash and probe-hash keys, hashes within a
radius, nearest neighbours by DCT descriptor."""

from __future__ import annotations

from typing import Any

import numpy as np

from dcgan_data.dedup import partition
from dcgan_data.dedup.grouping import exact_groups, radius_pairs, unique_pairs
from dcgan_data.dedup.neighbours import neighbour_pairs

BUCKET_BAND = 4  # a row sharing a key is a candidate with this many rows after it


def shared_key_pairs(keys: np.ndarray, band: int = BUCKET_BAND, **partitioning: Any
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs (a < b) of rows sharing a key, from (N, M, 16) keys (each row's hash
    and probe hashes): every pair in a small bucket, a band through a large one
    (`partition.shared_hash_pairs`, which `partitioning` is passed to)."""
    a, b = partition.shared_hash_pairs(keys, band=band, **partitioning)
    return unique_pairs(a, b, len(keys))


def candidate_pairs(hashes: np.ndarray, probes: np.ndarray | None, radius: int,
                    grey: np.ndarray, neighbours: int, mirrors: bool, device: str,
                    min_cosine: float, **partitioning: Any
                    ) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """The union of every generator's candidate pairs (a < b) and how many each proposed."""
    a, b = shared_key_pairs(probes if probes is not None else hashes[:, None, :],
                            **partitioning)
    counts = {"hash": len(a)}
    if radius:
        inverse, first = exact_groups(hashes)
        code_a, code_b = radius_pairs(hashes[first], radius)
        a, b = np.concatenate([a, first[code_a]]), np.concatenate([b, first[code_b]])
        counts["radius"] = len(code_a)
    if neighbours:
        near_a, near_b = neighbour_pairs(grey, neighbours, min_cosine, mirrors, device)
        a, b = np.concatenate([a, near_a]), np.concatenate([b, near_b])
        counts["neighbours"] = len(near_a)
    a, b = unique_pairs(a, b, len(hashes))
    counts["distinct"] = len(a)
    return a, b, counts
