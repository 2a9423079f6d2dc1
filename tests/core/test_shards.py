import json

import numpy as np
import pytest
from click.testing import CliRunner

from dcgan_data.core.errors import InputError
from dcgan_data.core.shards import MANIFEST, ShardSet, ShardWriter
from dcgan_data.testing.photos import write_shards
from dcgan_data_cli.main import cli


def test_round_trip_memory_mapped(tmp_path, crops64):
    images = crops64[:250]
    write_shards(tmp_path / "s", images, rows_per_shard=100)
    shards = ShardSet(tmp_path / "s")
    assert len(shards) == 250 and shards.num_shards == 3 and shards.shape == (64, 64, 3)
    assert isinstance(shards.shard(0), np.memmap)
    np.testing.assert_array_equal(shards.load(), images)
    np.testing.assert_array_equal(shards.load([249, 0, 150]), images[[249, 0, 150]])
    assert shards.keys()[:2] == ["img000000", "img000001"]
    assert shards.verify() == []
    manifest = json.loads((tmp_path / "s" / MANIFEST).read_text())
    assert [s["rows"] for s in manifest["shards"]] == [100, 100, 50]
    assert np.load(tmp_path / "s" / "shard-00002.npy", mmap_mode="r").shape == (50, 64, 64, 3)


def test_verify_names_a_corrupted_shard(tmp_path, crops64):
    write_shards(tmp_path / "s", crops64[:20], rows_per_shard=10)
    path = tmp_path / "s" / "shard-00001.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    assert ShardSet(tmp_path / "s").verify() == ["shard-00001.npy: sha256 mismatch"]


def test_partial_and_missing_manifests_are_clear_errors(tmp_path, crops64):
    writer = ShardWriter(tmp_path / "p", (64, 64, 3))
    writer.write(0, crops64[:5], [f"k{i}" for i in range(5)])
    with pytest.raises(InputError, match="did not finish"):
        ShardSet(tmp_path / "p")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="not a shard directory"):
        ShardSet(tmp_path / "empty")
    with pytest.raises(InputError, match="no such shard directory"):
        ShardSet(tmp_path / "nowhere")
    (tmp_path / "p" / MANIFEST).write_text("{not json")
    with pytest.raises(InputError, match="unreadable manifest"):
        ShardSet(tmp_path / "p")


def test_mismatched_manifest_is_refused(tmp_path, crops64):
    write_shards(tmp_path / "s", crops64[:10])
    manifest = json.loads((tmp_path / "s" / MANIFEST).read_text())
    manifest["shards"][0]["rows"] = 11
    manifest["count"] = 11
    (tmp_path / "s" / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="shape"):
        ShardSet(tmp_path / "s").shard(0)


def test_writer_resumes_and_refuses_another_runs_shards(tmp_path, crops64):
    writer = ShardWriter(tmp_path / "s", (64, 64, 3), {"size": 64})
    writer.write(0, crops64[:3], ["a", "b", "c"])
    again = ShardWriter(tmp_path / "s", (64, 64, 3), {"size": 64})
    assert again.is_done(0) and not again.is_done(1)
    with pytest.raises(InputError, match="different run"):
        ShardWriter(tmp_path / "s", (64, 64, 3), {"size": 32})
    with pytest.raises(RuntimeError, match="not written"):
        again.finish(2)


def test_a_shard_listed_twice_or_an_incomplete_entry_is_refused(tmp_path, crops64):
    write_shards(tmp_path / "s", crops64[:20], rows_per_shard=10)
    path = tmp_path / "s" / MANIFEST
    manifest = json.loads(path.read_text())
    twice = dict(manifest, shards=[*manifest["shards"], manifest["shards"][0]], count=30)
    path.write_text(json.dumps(twice))
    with pytest.raises(InputError, match="shard-00000.npy is listed twice"):
        ShardSet(tmp_path / "s")
    result = CliRunner().invoke(cli, ["inspect", str(tmp_path / "s")])
    assert result.exit_code == 2 and "listed twice" in result.output
    outside = dict(manifest, shards=[dict(manifest["shards"][0], keys="../k.txt"),
                                     manifest["shards"][1]])
    path.write_text(json.dumps(outside))
    with pytest.raises(InputError, match="not a file name"):
        ShardSet(tmp_path / "s")
    incomplete = dict(manifest, shards=[{"rows": 10}, manifest["shards"][1]])
    path.write_text(json.dumps(incomplete))
    with pytest.raises(InputError, match="shard entry 0 is incomplete"):
        ShardSet(tmp_path / "s")


def test_an_edited_key_or_size_file_fails_its_checksum(tmp_path, crops64):
    write_shards(tmp_path / "s", crops64[:20], rows_per_shard=10)
    keys = tmp_path / "s" / "shard-00001.keys.txt"
    keys.write_text(keys.read_text().replace("img000012", "img000099"))
    hw = tmp_path / "s" / "shard-00000.hw.npy"
    np.save(hw, np.load(hw) + 1)
    shards = ShardSet(tmp_path / "s")
    problems = shards.verify()
    assert len(problems) == 2
    assert "shard-00000.hw.npy: sha256 mismatch" in problems[0]
    assert "shard-00001.keys.txt: sha256 mismatch" in problems[1]
    with pytest.raises(InputError, match="keys.txt: sha256 mismatch"):
        shards.keys()
