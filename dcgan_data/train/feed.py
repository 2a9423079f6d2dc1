"""The batch feed: which shard rows each training step reads, and getting them onto the device.

The uint8 shards are never decoded per step. On CUDA the whole dataset is copied into GPU
memory when it fits (memory) and batches are gathered there; otherwise (stream, and always on
CPU by default) each batch is gathered from the memory-mapped shards one step ahead in a
background thread, through pinned memory on CUDA. The rows of step s are a function of
(seed, step, rank) alone, so a resumed run reads exactly what the uninterrupted run would.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from dcgan_data.core.files import progress
from dcgan_data.core.shards import ShardSet


def batch_rows(step: int, rows: int, batch: int, rank: int, world: int, seed: int) -> np.ndarray:
    """Row indices of this rank's batch at `step`: a fresh permutation every epoch, the last
    partial batch dropped, each rank its own slice. A pure function, hence exact resumes."""
    per_epoch = rows // (batch * world)
    epoch, k = divmod(step, per_epoch)
    order = _epoch_order(rows, seed, epoch)
    start = (k * world + rank) * batch
    return np.sort(order[start : start + batch])  # sorted: reads walk the shards forwards


_orders: dict[tuple[int, int, int], np.ndarray] = {}


def _epoch_order(rows: int, seed: int, epoch: int) -> np.ndarray:
    key = (rows, seed, epoch)
    if key not in _orders:
        _orders.clear()  # one epoch's order at a time
        _orders[key] = np.random.default_rng([seed, epoch]).permutation(rows)
    return _orders[key]


def data_checksum(shards: ShardSet) -> str:
    """One sha256 over the manifest's shard checksums, in order: names the exact training data
    (a resumed run and cached real statistics must match it, not merely its row count)."""
    digest = hashlib.sha256()
    for entry in shards.shards:
        digest.update(f"{entry['sha256']}:{entry['rows']}\n".encode())
    return digest.hexdigest()


class BatchFeed:
    """uint8 batches (B, H, W, 3) on the device, gathered by global row index.

    memory: the whole dataset copied once into device memory; batches are gathered there.
    stream: rows gathered from the memory-mapped shards (page cache) one step ahead in a
    thread, into pinned memory when the device is a GPU, then copied asynchronously.
    """

    def __init__(self, shards: ShardSet, device: torch.device, mode: str):
        self.shards, self.device = shards, device
        if mode == "auto":
            mode = "memory" if device.type == "cuda" and _fits_on_gpu(shards, device) else "stream"
        self.mode = mode
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="batch-feed")
        self.ahead: tuple[np.ndarray, Any] | None = None
        self.data = None
        if mode == "memory":
            self.data = torch.empty((len(shards), *shards.shape), dtype=torch.uint8, device=device)
            chunk = 8192
            for i, array in progress(shards.iter_shards(), total=shards.num_shards,
                                     desc="loading shards", unit="shard"):
                start = int(shards.offsets[i])
                for j in range(0, len(array), chunk):
                    rows = torch.from_numpy(np.array(array[j : j + chunk]))
                    self.data[start + j : start + j + len(rows)].copy_(rows)

    def _gather(self, rows: np.ndarray) -> torch.Tensor:
        batch = torch.from_numpy(self.shards.load(rows))
        return batch.pin_memory() if self.device.type == "cuda" else batch

    def get(self, rows: np.ndarray, next_rows: np.ndarray | None = None) -> torch.Tensor:
        if self.data is not None:
            return self.data[torch.from_numpy(rows).to(self.device)]
        if self.ahead is not None and np.array_equal(self.ahead[0], rows):
            batch = self.ahead[1].result()
        else:
            batch = self._gather(rows)
        self.ahead = None
        if next_rows is not None:
            self.ahead = (next_rows, self.pool.submit(self._gather, next_rows))
        return batch.to(self.device, non_blocking=True)

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def _fits_on_gpu(shards: ShardSet, device: torch.device) -> bool:
    free, _ = torch.cuda.mem_get_info(device)
    need = len(shards) * int(np.prod(shards.shape))
    return need < 0.6 * free  # leave room for the models, activations and the allocator
