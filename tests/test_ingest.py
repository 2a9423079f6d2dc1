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

from conftest import PHOTOS, ROOT
from dcgan_data.errors import InputError
from dcgan_data.images import decode_image, encode_image
from dcgan_data.ingest import ingest, inspect
from dcgan_data.shards import ShardSet
from dcgan_data.status import read_table


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


KILLABLE = """
import sys, time
import dcgan_data.ingest as ing
ing.CHUNK = 5
real = ing.crop_items
def slow(*args, **kwargs):
    time.sleep(0.1)
    return real(*args, **kwargs)
ing.crop_items = slow
ing.ingest(sys.argv[1], sys.argv[2], workers=1, rows_per_shard=10)
"""


def test_killed_ingest_resumes_without_loss_or_duplicates(tmp_path):
    write_lmdb(tmp_path / "x_lmdb", real_values(60))
    clean = ingest(tmp_path / "x_lmdb", tmp_path / "clean", workers=1, rows_per_shard=10)
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", KILLABLE, str(tmp_path / "x_lmdb"), str(out)],
                            cwd=ROOT)
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
    assert not list(out.glob(".*.tmp"))


def test_inspect_summarises_sources_and_shards(tmp_path):
    write_lmdb(tmp_path / "x_lmdb", real_values(6) + [b"junk"])
    summary, sheet = inspect(tmp_path / "x_lmdb", sample=10)
    assert summary["count"] == 7 and summary["formats"] == {"jpeg": 6, "not_an_image": 1}
    assert len(summary["sample_failed"]) == 1 and sheet is not None
    ingest(tmp_path / "x_lmdb", tmp_path / "s", workers=1)
    summary, sheet = inspect(tmp_path / "s")
    assert summary["kind"] == "shards" and summary["count"] == 6 and summary["verified"]
