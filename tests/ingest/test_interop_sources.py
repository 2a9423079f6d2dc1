"""ingest from webdataset tars and Hugging Face datasets, on real photos."""

from __future__ import annotations

import io
import os
import pickle
import shutil
import tarfile

import numpy as np
import pytest

from dcgan_data.core.shards import ShardSet
from dcgan_data.export.stage import export
from dcgan_data.ingest.sources import HfSource, WebDatasetSource, open_source
from dcgan_data.ingest.stage import ingest
from dcgan_data.testing.photos import PHOTOS, write_shards

wds = pytest.importorskip("webdataset")
datasets = pytest.importorskip("datasets")
CORRUPT = PHOTOS[0].read_bytes()[:200] + bytes(range(256)) * 8


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The first 6 photos ingested from a plain folder: what every other source must give."""
    root = tmp_path_factory.mktemp("ref")
    for p in PHOTOS[:6]:
        shutil.copy(p, root / p.name)
    shards = tmp_path_factory.mktemp("ref_shards")
    ingest(root, shards, size=32, workers=1)
    return ShardSet(shards).load()


def test_webdataset_tars_every_image_member_keyed_by_name(tmp_path, reference):
    (tmp_path / "w").mkdir()
    for t, chunk in enumerate([PHOTOS[:4], PHOTOS[4:6]]):
        with wds.TarWriter(str(tmp_path / "w" / f"train-{t}.tar")) as tar:
            for p in chunk:
                tar.write({"__key__": p.stem, "jpg": p.read_bytes(), "json": b"{}"})
            if t == 1:
                tar.write({"__key__": "broken", "jpg": CORRUPT, "txt": b"caption"})
    source = open_source(tmp_path / "w")
    assert isinstance(source, WebDatasetSource)
    assert source.items()[0] == f"train-0.tar/{PHOTOS[0].stem}.jpg" and len(source.items()) == 7
    assert len(pickle.dumps(source)) < 1000  # the member index stays behind
    report = ingest(tmp_path / "w", tmp_path / "s", size=32, workers=2)
    assert report["source_kind"] == "webdataset" and report["written"] == 6
    assert report["failed_items"][0]["key"] == "train-1.tar/broken.jpg"
    np.testing.assert_array_equal(ShardSet(tmp_path / "s").load(), reference)
    one = open_source(tmp_path / "w" / "train-1.tar")
    assert one.items() == [f"{PHOTOS[4].stem}.jpg", f"{PHOTOS[5].stem}.jpg", "broken.jpg"]
    assert one.read_many(["nope.jpg"]) == [None]


def test_hf_save_to_disk_folder(tmp_path, reference):
    rows = {"image": [{"bytes": p.read_bytes(), "path": None} for p in PHOTOS[:6]],
            "caption": [p.stem for p in PHOTOS[:6]]}
    features = datasets.Features({"image": datasets.Image(), "caption": datasets.Value("string")})
    data = datasets.Dataset.from_dict(rows, features=features)
    datasets.DatasetDict({"train": data}).save_to_disk(str(tmp_path / "dd"))
    data.save_to_disk(str(tmp_path / "d"))
    for path in ("d", "dd"):
        source = open_source(tmp_path / path)
        assert isinstance(source, HfSource) and source.items() == [str(i) for i in range(6)]
        report = ingest(tmp_path / path, tmp_path / f"s{path}", size=32, workers=2)
        assert report["source_kind"] == "hf" and report["written"] == 6
        np.testing.assert_array_equal(ShardSet(tmp_path / f"s{path}").load(), reference)


def test_hf_parquet_files_including_a_plain_binary_column(tmp_path, reference):
    pq = pytest.importorskip("pyarrow.parquet")
    pa = pytest.importorskip("pyarrow")
    data = datasets.Dataset.from_dict(
        {"picture": [{"bytes": p.read_bytes(), "path": None} for p in PHOTOS[:6]]},
        features=datasets.Features({"picture": datasets.Image()}))
    (tmp_path / "p" / "data").mkdir(parents=True)
    data.select(range(4)).to_parquet(str(tmp_path / "p" / "data" / "a.parquet"))
    pq.write_table(pa.table({"jpg": [p.read_bytes() for p in PHOTOS[4:6]] + [CORRUPT]}),
                   tmp_path / "p" / "data" / "b.parquet", row_group_size=2)
    source = open_source(tmp_path / "p")
    assert isinstance(source, HfSource) and source.items()[-1] == "data/b.parquet/2"
    report = ingest(tmp_path / "p", tmp_path / "s", size=32, workers=2)
    assert report["written"] == 6 and report["failed_items"][0]["key"] == "data/b.parquet/2"
    np.testing.assert_array_equal(ShardSet(tmp_path / "s").load(), reference)
    assert source.read_many(["data/b.parquet/9", "c.parquet/0"]) == [None, None]


@pytest.mark.parametrize("fmt", ["webdataset", "hf"])
def test_export_then_ingest_gives_back_the_same_rows(tmp_path, crops64, fmt):
    write_shards(tmp_path / "s", crops64[:30])
    export(tmp_path / "s", tmp_path / "e", fmt, rows_per_part=12)
    ingest(tmp_path / "e", tmp_path / "back", size=64, workers=1)
    np.testing.assert_array_equal(ShardSet(tmp_path / "back").load(), crops64[:30])


def test_tar_members_repeated_or_linked_are_read_or_named(tmp_path):
    tar_path = tmp_path / "odd.tar"
    with tarfile.open(tar_path, "w") as tar:
        for name, data in [("a.jpg", PHOTOS[0].read_bytes()), ("a.jpg", PHOTOS[1].read_bytes())]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, kind, target in [("b.jpg", tarfile.LNKTYPE, "a.jpg"),
                                   ("c.jpg", tarfile.SYMTYPE, "/etc/passwd"),
                                   ("d.jpg", tarfile.SYMTYPE, "a.jpg"),
                                   ("e.jpg", tarfile.LNKTYPE, "gone.jpg"),
                                   ("f.jpg", tarfile.FIFOTYPE, "")]:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            tar.addfile(info)
    source = WebDatasetSource(tar_path)
    assert source.items() == ["a.jpg", "a.jpg#2", "b.jpg", "c.jpg", "d.jpg", "e.jpg", "f.jpg"]
    read = source.read_many(source.items())
    assert read[:3] == [PHOTOS[0].read_bytes(), PHOTOS[1].read_bytes(), PHOTOS[1].read_bytes()]
    assert [r.reason for r in read[3:]] == ["symlink", "symlink", "link_target_missing",
                                            "not_a_file"]
    report = ingest(tar_path, tmp_path / "s", size=32, workers=1)
    assert report["read"] == 7 and report["written"] == 3
    assert report["failed_by_reason"] == {"symlink": 2, "link_target_missing": 1,
                                          "not_a_file": 1}
    assert [f["key"] for f in report["failed_items"]] == ["c.jpg", "d.jpg", "e.jpg", "f.jpg"]
    assert ShardSet(tmp_path / "s").keys() == ["a.jpg", "a.jpg#2", "b.jpg"]


def test_hf_path_cells_read_only_bounded_regular_files_below_the_root(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    data, outside = tmp_path / "data", tmp_path / "elsewhere"
    (data / "imgs").mkdir(parents=True)
    outside.mkdir()
    shutil.copy(PHOTOS[0], data / "imgs" / "a.jpg")
    shutil.copy(PHOTOS[1], outside / "b.jpg")
    (data / "imgs" / "big.jpg").write_bytes(PHOTOS[2].read_bytes() * 40)
    os.mkfifo(data / "imgs" / "pipe.jpg")
    paths = ["imgs/a.jpg", str(outside / "b.jpg"), "/dev/zero", "imgs/pipe.jpg", "imgs/big.jpg",
             "../elsewhere/b.jpg"]
    cells = pa.array([{"bytes": None, "path": p} for p in paths],
                     pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    pq.write_table(pa.table({"image": cells}), data / "train.parquet")
    max_bytes = len(PHOTOS[2].read_bytes()) * 20
    report = ingest(data / "train.parquet", tmp_path / "s", size=32, workers=1, max_bytes=max_bytes)
    assert report["read"] == 6 and report["written"] == 1
    assert report["failed_by_reason"] == {"outside_local_root": 3, "not_a_file": 1,
                                          "too_large": 1}
    assert [f["key"] for f in report["failed_items"]] == [f"train.parquet/{i}" for i in range(1, 6)]
    assert all("root:" not in f["detail"] for f in report["failed_items"])
    wider = ingest(data / "train.parquet", tmp_path / "t", size=32, workers=2, max_bytes=max_bytes,
                   local_root=tmp_path)  # pickled to the workers with the source
    assert wider["written"] == 3 and wider["failed_by_reason"] == {
        "outside_local_root": 1, "not_a_file": 1, "too_large": 1}
