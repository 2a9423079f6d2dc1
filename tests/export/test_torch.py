"""ShardDataset in a user's own loop: tensors, labels, pickling as paths, DataLoader workers."""

import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from dcgan_data.core.errors import InputError
from dcgan_data.core.shards import ShardSet
from dcgan_data.export.torch_dataset import ShardDataset
from dcgan_data.testing.photos import write_shards


@pytest.fixture
def shard_dir(tmp_path, crops64):
    path = write_shards(tmp_path / "s", crops64[:50], rows_per_shard=20)
    rows = [f"img{i:06d},{'cat' if i % 3 else 'dog'}" for i in range(0, 50, 2)]
    (path / "labels.csv").write_text("key,label\n" + "\n".join(rows) + "\n")
    return path


def test_items_are_float_chw_or_the_stored_uint8(shard_dir, crops64):
    data = ShardDataset(shard_dir)
    assert len(data) == 50
    x = data[23]
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32
    assert -1.0 <= float(x.min()) and float(x.max()) <= 1.0
    expected = torch.from_numpy(crops64[23]).permute(2, 0, 1).float() / 127.5 - 1
    torch.testing.assert_close(x, expected)
    raw = ShardDataset(shard_dir, output="uint8")[-1]
    assert raw.dtype == torch.uint8 and np.array_equal(raw.numpy(), crops64[49])
    with pytest.raises(IndexError):
        data[50]
    with pytest.raises(InputError):
        ShardDataset(shard_dir, output="bf16")


def test_labels_index_the_sorted_class_names(shard_dir):
    data = ShardDataset(shard_dir, labels=True)
    assert data.classes == ["cat", "dog"]
    assert data[0][1] == 1 and data[2][1] == 0 and data[1][1] == -1  # row 1 has no label
    with pytest.raises(InputError, match="no labels.csv"):
        (shard_dir / "labels.csv").unlink()
        ShardDataset(shard_dir, labels=True)


def test_pickles_as_paths_not_data(shard_dir):
    shards = ShardSet(shard_dir)
    shards.load()  # maps every shard
    assert len(pickle.dumps(shards)) < 4096  # the data is 600 kB
    data = ShardDataset(shard_dir)
    _ = data[0], data[49]
    clone = pickle.loads(pickle.dumps(data))
    assert len(pickle.dumps(data)) < 8192
    torch.testing.assert_close(clone[49], data[49])


def test_spawned_workers_and_distributed_sampler_see_every_row_once(shard_dir, crops64):
    data = ShardDataset(shard_dir, output="uint8")
    seen = []
    for rank in range(2):
        sampler = DistributedSampler(data, num_replicas=2, rank=rank, shuffle=True, seed=1)
        loader = DataLoader(data, batch_size=8, sampler=sampler, num_workers=2,
                            multiprocessing_context="spawn")
        indices = list(sampler)
        rows = torch.cat(list(loader)).numpy()
        np.testing.assert_array_equal(rows, crops64[indices])
        seen += indices
    assert sorted(seen) == list(range(50))
