import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time

import cv2
import lmdb
import numpy as np
import pytest
from PIL import Image

from dcgan_data.core.errors import InputError
from dcgan_data.core.images import decode_image, encode_image
from dcgan_data.core.shards import ShardSet, ShardTarget
from dcgan_data.core.status import read_table
from dcgan_data.ingest import chunks
from dcgan_data.ingest.inspect import inspect
from dcgan_data.ingest.sources import open_source
from dcgan_data.ingest.stage import ingest
from dcgan_data.testing.photos import PHOTOS, ROOT


def write_lmdb(path, values):
    env = lmdb.open(str(path), map_size=1 << 30)
    with env.begin(write=True) as txn:
        for value in values:
            txn.put(hashlib.sha1(value).hexdigest().encode(), value)
    env.close()
    return {hashlib.sha1(v).hexdigest(): v for v in values}


def png(array):
    return cv2.imencode(".png", array)[1].tobytes()


def real_values(n, side=96):
    photos = [decode_image(p.read_bytes())[0] for p in PHOTOS]
    out = []
    for i in range(n):
        photo = photos[i % len(photos)]
        y = (i * 7) % (photo.shape[0] - side)
        out.append(encode_image(photo[y : y + side, :side * 3 // 2], "jpeg", 90))
    return out


def bad_values():
    good = PHOTOS[1].read_bytes()
    bomb = io.BytesIO()
    Image.new("L", (12000, 12000)).save(bomb, "PNG")
    gray = cv2.cvtColor(cv2.imdecode(np.frombuffer(good, np.uint8), 1), cv2.COLOR_BGR2GRAY)
    rgba = np.dstack([cv2.imdecode(np.frombuffer(good, np.uint8), 1), np.full(gray.shape, 128,
                                                                              np.uint8)])
    return {
        "truncated": good[: len(good) // 3],
        "corrupt": good[:4] + bytes(range(256)) * 20,
        "empty": b"",
        "not_an_image": b"%PDF-1.4 this is not an image",
        "too_small": encode_image(np.zeros((40, 40, 3), np.uint8), "jpeg", 90),
        "too_many_pixels": bomb.getvalue(),
        "grayscale": png(gray),
        "rgba": png(rgba),
        "16bit": png(gray.astype(np.uint16) * 257),
    }


def test_ingest_skips_and_names_every_bad_value(tmp_path):
    good = real_values(30)
    bad = bad_values()
    keys = write_lmdb(tmp_path / "x_lmdb", good + list(bad.values()))
    key_of = {v: k for k, v in keys.items()}
    report = ingest(tmp_path / "x_lmdb", tmp_path / "out", workers=2, rows_per_shard=16,
                    max_pixels=100_000_000 // 2)
    failed = {f["key"]: f["reason"] for f in report["failed_items"]}
    for reason in ("truncated", "corrupt", "empty", "not_an_image", "too_small",
                   "too_many_pixels"):
        assert failed[key_of[bad[reason]]] == reason
    converted = {c["key"]: c["conversion"] for c in report["converted_items"]}
    for kind in ("grayscale", "rgba", "16bit"):
        assert converted[key_of[bad[kind]]] == kind
    assert report["read"] == 39 and report["failed"] == 6 and report["written"] == 33
    shards = ShardSet(tmp_path / "out")
    assert len(shards) == 33 and shards.verify() == []
    assert set(shards.keys()) == set(keys) - set(failed)
    assert (shards.source_hw() >= 64).all()
    on_disk = json.loads((tmp_path / "out" / "ingest_report.json").read_text())
    assert on_disk["failed_by_reason"]["truncated"] == 1
    fates = read_table(tmp_path / "out" / on_disk["status_table"])
    assert sorted(r["key"] for r in fates) == sorted(keys)  # one row per source key
    assert {r["key"]: r["status"] for r in fates if r["status"] != "ok"} == failed
    ok = {r["key"]: [r["height"], r["width"]] for r in fates if r["status"] == "ok"}
    assert [ok[k] for k in shards.keys()] == shards.source_hw().tolist()
    assert (tmp_path / "out" / "contact_sheet.png").stat().st_size > 1000


def test_rows_match_a_direct_crop(tmp_path):
    values = real_values(5)
    keys = write_lmdb(tmp_path / "x_lmdb", values)
    ingest(tmp_path / "x_lmdb", tmp_path / "out", size=32, workers=1)
    shards = ShardSet(tmp_path / "out")
    for key, row in zip(shards.keys(), shards.load(), strict=True):
        rgb, _ = decode_image(keys[key])
        side = min(rgb.shape[:2])
        top, left = (rgb.shape[0] - side) // 2, (rgb.shape[1] - side) // 2
        square = rgb[top : top + side, left : left + side]
        np.testing.assert_array_equal(row, cv2.resize(square, (32, 32),
                                                      interpolation=cv2.INTER_AREA))


def test_empty_source_and_bad_options(tmp_path):
    write_lmdb(tmp_path / "e_lmdb", [])
    with pytest.raises(InputError, match="no images"):
        ingest(tmp_path / "e_lmdb", tmp_path / "out")
    with pytest.raises(InputError, match="size"):
        ingest(tmp_path / "e_lmdb", tmp_path / "out", size=63)
    assert not (tmp_path / "out" / "manifest.json").exists()


def shard_files(out):
    """The shards, their keys and sizes, and the manifest: what must be byte-identical."""
    return sorted(p.name for p in out.iterdir() if p.suffix in (".npy", ".txt")
                  or p.name == "manifest.json")


def same_shard_files(one, other):
    assert shard_files(one) and shard_files(one) == shard_files(other)
    for name in shard_files(one):
        assert (one / name).read_bytes() == (other / name).read_bytes(), name


def no_leftovers(out):
    """No chunk folder, no temporary file."""
    return not list(out.glob(chunks.CHUNKS + "*")) and not list(out.rglob(".*.tmp"))


def test_shards_joined_from_chunks_equal_shards_written_whole(tmp_path, monkeypatch):
    bad = bad_values()
    write_lmdb(tmp_path / "x_lmdb", real_values(23) + [bad[k] for k in ("truncated", "empty",
                                                                       "too_small", "rgba")])
    stale = tmp_path / "out" / f"{chunks.CHUNKS}of-another-run"  # other options' chunks
    stale.mkdir(parents=True)
    (stale / "shard-00000.items-0-4.json").write_text("{}")
    monkeypatch.setattr(chunks, "CHUNK", 4)  # shards of 10 rows: 3 chunks each, the last short
    report = ingest(tmp_path / "x_lmdb", tmp_path / "out", workers=2, rows_per_shard=10)
    assert report["shards"] == 3 and report["failed"] == 3 and report["chunks_resumed"] == 0
    assert no_leftovers(tmp_path / "out")
    # each shard as a whole unit decoded in one piece and written by np.save would be
    source = open_source(tmp_path / "x_lmdb")
    whole = ShardTarget(tmp_path / "whole", [64, 64, 3], {})
    for i in range(3):
        part = chunks.crop_items(source, source.items()[i * 10 : (i + 1) * 10], 64)
        whole.write(i, part["images"], part["keys"], part["hw"])
        for suffix in (".npy", ".keys.txt", ".hw.npy"):
            name = f"shard-{i:05d}{suffix}"
            assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "whole" / name
                                                              ).read_bytes()


KILLABLE = """
import sys, time
import dcgan_data.ingest.chunks as ing
from dcgan_data.ingest.stage import ingest
ing.CHUNK = 5
real = ing.crop_items
def slow(*args, **kwargs):
    time.sleep(0.1)
    return real(*args, **kwargs)
ing.crop_items = slow
join = ing.join_chunks
def slow_join(*args):
    time.sleep(0.2)
    return join(*args)
ing.join_chunks = slow_join
ingest(sys.argv[1], sys.argv[2], workers=1, rows_per_shard=int(sys.argv[3]))
"""


def test_killed_ingest_resumes_without_loss_or_duplicates(tmp_path):
    write_lmdb(tmp_path / "x_lmdb", real_values(60))
    clean = ingest(tmp_path / "x_lmdb", tmp_path / "clean", workers=1, rows_per_shard=10)
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", KILLABLE, str(tmp_path / "x_lmdb"), str(out),
                             "10"], cwd=ROOT)
    deadline = time.time() + 60
    while not (out / "shard-00002.json").exists():
        assert proc.poll() is None and time.time() < deadline, "ingest ended before the kill"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "manifest.json").exists()
    resumed = ingest(tmp_path / "x_lmdb", out, workers=2, rows_per_shard=10)
    assert resumed["shards_resumed"] >= 3
    assert resumed["written"] == clean["written"] == 60
    a, b = ShardSet(tmp_path / "clean"), ShardSet(out)
    assert a.keys() == b.keys() and len(set(b.keys())) == 60
    np.testing.assert_array_equal(a.load(), b.load())
    assert no_leftovers(out)  # the killed run's chunks (of 5 items, not 256) are not taken


def test_ingest_killed_while_decoding_keeps_its_finished_chunks(tmp_path, monkeypatch):
    write_lmdb(tmp_path / "x_lmdb", real_values(60))
    clean = ingest(tmp_path / "x_lmdb", tmp_path / "clean", workers=1, rows_per_shard=30)
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", KILLABLE, str(tmp_path / "x_lmdb"), str(out),
                             "30"], cwd=ROOT)  # 2 shards of 6 chunks
    deadline = time.time() + 60
    while len(list(out.glob(f"{chunks.CHUNKS}*/*.json"))) < 3:
        assert proc.poll() is None and time.time() < deadline, "ingest ended before the kill"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = len(list(out.glob(f"{chunks.CHUNKS}*/*.json")))
    assert not list(out.glob("shard-*")) and finished < 6  # killed in the first shard
    monkeypatch.setattr(chunks, "CHUNK", 5)  # the killed run's chunks
    decoded = []
    real = chunks.crop_items
    monkeypatch.setattr(chunks, "crop_items", lambda source, items, *a: decoded.extend(items)
                        or real(source, items, *a))
    resumed = ingest(tmp_path / "x_lmdb", out, workers=1, rows_per_shard=30)
    assert resumed["chunks_resumed"] == finished and resumed["shards_resumed"] == 0
    assert len(decoded) == len(set(decoded)) == 60 - 5 * finished  # the others were kept
    assert resumed["read"] == resumed["written"] == clean["written"] == 60  # none twice
    assert len(read_table(out / resumed["status_table"])) == 60
    same_shard_files(tmp_path / "clean", out)
    assert no_leftovers(out)


def test_inspect_summarises_sources_and_shards(tmp_path):
    write_lmdb(tmp_path / "x_lmdb", real_values(6) + [b"junk"])
    summary, sheet = inspect(tmp_path / "x_lmdb", sample=10)
    assert summary["count"] == 7 and summary["formats"] == {"jpeg": 6, "not_an_image": 1}
    assert len(summary["sample_failed"]) == 1 and sheet is not None
    ingest(tmp_path / "x_lmdb", tmp_path / "s", workers=1)
    summary, sheet = inspect(tmp_path / "s")
    assert summary["kind"] == "shards" and summary["count"] == 6 and summary["verified"]
