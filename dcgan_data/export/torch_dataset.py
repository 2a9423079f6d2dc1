"""A PyTorch map-style dataset over a shard directory, for training loops other than ours.

    from dcgan_data.export.torch_dataset import ShardDataset
    data = ShardDataset("shards/", labels=True)       # float CHW in [-1, 1], class index
    loader = DataLoader(data, batch_size=128, shuffle=True, num_workers=4)

The dataset pickles as the shard directory's path: each DataLoader worker (fork, spawn or
forkserver) maps the shard files itself on first use, so no worker receives a copy of the data.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from dcgan_data.core.errors import InputError
from dcgan_data.core.shards import ShardSet
from dcgan_data.export.rows import row_labels

OUTPUTS = ("float", "uint8")


class ShardDataset(Dataset):
    """Rows of a shard directory as tensors.

    output="float": (3, H, W) float32 in [-1, 1] (what a tanh generator's D is fed);
    output="uint8": (H, W, 3) uint8, as stored. With labels=True, items are (image, class)
    where class indexes `classes` (the sorted labels of labels.csv; rows without a label
    get -1). `transform`, if given, is applied to the image last.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        output: str = "float",
        labels: bool = False,
        transform: Callable[[torch.Tensor], Any] | None = None,
    ):
        if output not in OUTPUTS:
            raise InputError(f"output must be one of {OUTPUTS}, not {output!r}")
        self.shards = ShardSet(path)
        self.output = output
        self.transform = transform
        self.classes: list[str] = []
        self.targets: np.ndarray | None = None
        if labels:
            names = row_labels(self.shards)
            if names is None:
                raise InputError(f"{self.shards.path}: labels=True but no labels.csv")
            self.classes = sorted({n for n in names if n is not None})
            index = {name: i for i, name in enumerate(self.classes)}
            self.targets = np.array([index.get(n, -1) for n in names], np.int64)

    def __len__(self) -> int:
        return len(self.shards)

    def __getitem__(self, i: int) -> Any:
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"row {i} out of range 0..{len(self) - 1}")
        shard = int(np.searchsorted(self.shards.offsets, i, side="right")) - 1
        row = np.array(self.shards.shard(shard)[i - self.shards.offsets[shard]])
        image = torch.from_numpy(row)
        if self.output == "float":
            image = image.permute(2, 0, 1).float().div_(127.5).sub_(1.0)
        if self.transform is not None:
            image = self.transform(image)
        if self.targets is None:
            return image
        return image, int(self.targets[i])
