"""Candidate pairs by nearest neighbours of the DCT descriptor: exact search, or inverted
lists at scale."""

from __future__ import annotations

import numpy as np
import torch

from dcgan_data.core.files import progress
from dcgan_data.dedup.grouping import unique_pairs
from dcgan_data.dedup.views import CENTRE, ZOOMS, descriptors

EXACT_SEARCH_ROWS = 50_000
LIST_ROWS = 1000  # rows per inverted list, on average
LISTS_VISITED = 16  # lists searched per query: its nearest centroids
QUERY_CHUNK = 1 << 18  # queries searched together (bounds the memory of their best rows)
QUERY_BLOCK = 512  # queries multiplied with a list at once: their similarities stay in cache


def neighbour_pairs(grey: np.ndarray, k: int, min_cosine: float, mirrors: bool = False,
                    device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Pairs (a < b) where b is among a's k nearest neighbours by DCT descriptor (or the
    reverse), with cosine >= min_cosine, in three searches: a's own view and its zoomed-in
    views among the rows' own views (trims and pads), a's centre among the rows' centres
    (copies whose borders a warp changed), and a's clipped view among the rows' clipped
    views (overlays); mirror views too with `mirrors`. Exact search up to EXACT_SEARCH_ROWS
    rows, inverted lists above."""
    n = len(grey)
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    plain, centre, clipped = (1.0, False, False), (CENTRE, False, False), (1.0, False, True)
    searches = [(plain, [plain, *((z, False, False) for z in ZOOMS)]), (centre, [centre]),
                (clipped, [clipped])]
    if mirrors:
        searches = [(indexed, [*views, (indexed[0], True, indexed[2])])
                    for indexed, views in searches]
    found_a, found_b = [], []
    with progress(total=sum(len(views) for _, views in searches), desc="neighbour search",
                  unit="view", leave=False) as bar:
        for indexed, views in searches:
            base = descriptors(grey, *indexed, device=device)
            search = ExactSearch(base) if n <= EXACT_SEARCH_ROWS else InvertedLists(base)
            for view in views:
                query = base if view == indexed else descriptors(grey, *view, device=device)
                rows, found = search.nearest(query, k, min_cosine)
                found_a.append(rows)
                found_b.append(found)
                bar.update(1)
            del base, search, query  # one search's index in memory at a time
    return unique_pairs(np.concatenate(found_a), np.concatenate(found_b), n)


class ExactSearch:
    """Every query against every row (faiss, inner product of unit vectors)."""

    def __init__(self, base: np.ndarray):
        import faiss

        self.index = faiss.IndexFlatIP(base.shape[1])
        self.index.add(base)

    def nearest(self, query: np.ndarray, k: int, min_similarity: float
                ) -> tuple[np.ndarray, np.ndarray]:
        """(query row, base row) pairs: of each query's k + 1 most similar rows, those at
        least min_similarity, other than the query's own row."""
        k = min(k + 1, self.index.ntotal)
        similarity, found = self.index.search(query, k)
        rows = np.repeat(np.arange(len(query)), k)
        found, similarity = found.ravel(), similarity.ravel()
        keep = (found >= 0) & (similarity >= min_similarity) & (found != rows)
        return rows[keep], found[keep]


class InvertedLists:
    """Approximate search over rows clustered into lists (spherical k-means): a query sees
    the rows of its LISTS_VISITED nearest lists. Searched list by list rather than query by
    query: each list meets all the queries visiting it in matrix products of QUERY_BLOCK
    queries, so its rows are read from memory once per list, not once per query (the cost
    at millions of rows)."""

    def __init__(self, base: np.ndarray, seed: int = 0):
        import faiss

        lists = max(1, len(base) // LIST_ROWS)
        sample = base[np.random.default_rng(seed).choice(len(base), min(len(base), lists * 64),
                                                         replace=False)]
        kmeans = faiss.Kmeans(base.shape[1], lists, niter=20, spherical=True, seed=seed)
        kmeans.train(sample)
        self.centroids = faiss.IndexFlatIP(base.shape[1])
        self.centroids.add(kmeans.centroids)
        owner = self.centroids.search(base, 1)[1][:, 0]
        order = np.argsort(owner, kind="stable")
        self.order = torch.from_numpy(order)
        self.bounds = np.searchsorted(owner[order], np.arange(lists + 1))
        self.columns = torch.from_numpy(np.ascontiguousarray(base[order].T))

    def nearest(self, query: np.ndarray, k: int, min_similarity: float
                ) -> tuple[np.ndarray, np.ndarray]:
        """As ExactSearch.nearest, among the rows of each query's nearest lists."""
        parts = [self._nearest_chunk(query[start : start + QUERY_CHUNK], start, k,
                                     min_similarity)
                 for start in range(0, len(query), QUERY_CHUNK)]
        return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))

    def _nearest_chunk(self, query: np.ndarray, offset: int, k: int, min_similarity: float
                       ) -> tuple[np.ndarray, np.ndarray]:
        keep = k + 1  # the query's own row may be among them
        visited = torch.from_numpy(self.centroids.search(query, LISTS_VISITED)[1].ravel())
        by_list = torch.argsort(visited, stable=True)  # (query, visit) slots, list by list
        query_bounds = torch.searchsorted(visited[by_list], torch.arange(len(self.bounds)))
        queries = torch.from_numpy(query)
        # each slot's best rows in its list; rows too far from the query never enter
        best = torch.full((len(query) * LISTS_VISITED, keep), -2.0)
        best_row = torch.zeros((len(query) * LISTS_VISITED, keep), dtype=torch.int32)
        for lst in range(len(self.bounds) - 1):
            low, high = int(self.bounds[lst]), int(self.bounds[lst + 1])
            if low == high:
                continue
            slots = by_list[query_bounds[lst] : query_bounds[lst + 1]]
            members = self.columns[:, low:high]
            for start in range(0, len(slots), QUERY_BLOCK):
                block = slots[start : start + QUERY_BLOCK]
                similarity = queries[block // LISTS_VISITED] @ members
                near = similarity.amax(1) >= min_similarity
                if not near.any():
                    continue
                block, similarity = block[near], similarity[near]
                top, column = similarity.topk(min(keep, high - low), dim=1, sorted=False)
                best[block, : top.shape[1]] = top
                best_row[block, : top.shape[1]] = self.order[low + column].int()
        best = best.view(len(query), -1)
        top, at = best.topk(min(keep, best.shape[1]), dim=1)
        found = best_row.view(len(query), -1).gather(1, at).long()
        rows = torch.arange(offset, offset + len(query))[:, None].expand_as(found)
        hit = (top >= min_similarity) & (found != rows)
        return rows[hit].numpy(), found[hit].numpy()
