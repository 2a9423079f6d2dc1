"""Hostile input, faults and concurrency: one test per case of the reliability red team."""

from __future__ import annotations

import hashlib
import io
import os
import stat

import lmdb
import numpy as np
import pytest
from PIL import Image

from conftest import PHOTOS, write_shards
from dcgan_data.errors import InputError
from dcgan_data.files import LOCK_FILE, atomic_write_bytes, output_lock
from dcgan_data.images import ImageError, decode_image, encode_image, read_header
from dcgan_data.ingest import ingest, inspect
from dcgan_data.shards import ShardSet, ShardWriter, decode_key, encode_key

JPEG = PHOTOS[0].read_bytes()


def write_lmdb(path, values: dict[bytes, bytes]) -> None:
    env = lmdb.open(str(path), map_size=1 << 28)
    with env.begin(write=True) as txn:
        for key, value in values.items():
            txn.put(key, value)
    env.close()


def damaged(data: bytes, at: float = 0.5, n: int = 32) -> bytes:
    """`n` bytes in the middle of the entropy-coded data, inverted."""
    b = bytearray(data)
    mid = int(len(b) * at)
    b[mid : mid + n] = bytes(x ^ 0xFF for x in b[mid : mid + n])
    return bytes(b)


# ---------------------------------------------------------------------------- silent loss


def test_a_jpeg_whose_decoder_warns_is_corrupt_not_ingested(tmp_path):
    # OpenCV decodes these (libjpeg only warns on stderr) into grey-smeared pixels
    bad = {hashlib.sha1(p.read_bytes()).hexdigest().encode(): damaged(p.read_bytes())
           for p in (PHOTOS[0], PHOTOS[2], PHOTOS[3], PHOTOS[4])}
    good = {b"0" * 40: PHOTOS[5].read_bytes()}
    write_lmdb(tmp_path / "db", {**bad, **good})
    report = ingest(tmp_path / "db", tmp_path / "out", size=32, workers=1)
    assert report["written"] == 1 and report["failed_by_reason"] == {"corrupt": 4}
    assert all("Corrupt JPEG data" in f["detail"] or "marker" in f["detail"]
               for f in report["failed_items"])


def test_every_shard_reader_checks_the_sha256_when_it_maps_a_shard(tmp_path, crops64):
    out = write_shards(tmp_path / "s", crops64[:100], rows_per_shard=50)
    path = out / "shard-00001.npy"
    data = bytearray(path.read_bytes())
    data[-50 * 64 * 64 * 3 // 2 :] = bytes(50 * 64 * 64 * 3 // 2)  # zero the last rows
    path.write_bytes(bytes(data))
    shards = ShardSet(out)
    assert shards.load([0]).shape == (1, 64, 64, 3)  # shard 0 is intact
    with pytest.raises(InputError, match="sha256 mismatch"):
        shards.load([60])
    with pytest.raises(InputError, match="sha256 mismatch"):
        list(ShardSet(out).iter_shards())


ODD_KEYS = ["plain", "tab\there", "cr\rlf\n", "vt\x0bff\x0c", "fs\x1cgs\x1drs\x1e",
            "nel\x85", "ls\u2028ps\u2029", "100%", "a%20b", "caf\u00e9", "\u4eba",
            "raw\udcffbyte", " spaces "]


def test_keys_of_any_characters_round_trip_through_keys_txt(tmp_path, crops64):
    for key in ODD_KEYS:
        line = encode_key(key)
        assert line.isprintable() and decode_key(line) == key
    out = write_shards(tmp_path / "s", crops64[: len(ODD_KEYS)], keys=ODD_KEYS)
    lines = (out / "shard-00000.keys.txt").read_bytes().split(b"\n")
    assert len(lines) == len(ODD_KEYS) + 1 and lines[-1] == b""
    assert ShardSet(out).keys() == ODD_KEYS and ShardSet(out).verify() == []


def test_file_names_with_line_breaks_or_not_utf8_are_ingested_and_named(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    names = ["a\nb.jpg", "c\rd.jpg", "e\x85f.jpg", "g\u2028h.jpg", "i\x0bj.jpg"]
    for name in names:
        (src / name).write_bytes(JPEG)
    os.close(os.open(os.path.join(os.fsencode(src), b"k\xffl.jpg"), os.O_CREAT | os.O_WRONLY))
    (src / os.fsdecode(b"k\xffl.jpg")).write_bytes(JPEG)
    report = ingest(src, tmp_path / "out", size=32, workers=1)
    assert report["written"] == 6
    assert sorted(ShardSet(tmp_path / "out").keys()) == sorted([*names,
                                                                  os.fsdecode(b"k\xffl.jpg")])
    summary, _ = inspect(tmp_path / "out")
    assert summary["verified"], summary["problems"]


def test_lmdb_keys_that_are_not_ascii_are_read_and_written_reversibly(tmp_path):
    keys = [b"\xff\xfe-binary", "caf\u00e9".encode(), b"line\nbreak", b"0" * 40]
    write_lmdb(tmp_path / "db", dict.fromkeys(keys, JPEG))
    report = ingest(tmp_path / "db", tmp_path / "out", size=32, workers=1)
    assert report["written"] == 4, report["failed_items"]
    got = [k.encode("utf-8", "surrogateescape") for k in ShardSet(tmp_path / "out").keys()]
    assert sorted(got) == sorted(keys)


def test_trailing_data_after_the_image_is_not_truncation():
    motion_photo = JPEG + b"\x00\x00\x00\x18ftypmp42" + os.urandom(20_000)
    assert read_header(motion_photo).fmt == "jpeg"
    assert decode_image(motion_photo)[0].shape == decode_image(JPEG)[0].shape
    png = encode_image(decode_image(JPEG)[0], "png")
    assert decode_image(png + b"metadata after IEND" * 10)[0].shape[2] == 3
    with pytest.raises(ImageError, match="truncated"):
        read_header(JPEG[: len(JPEG) * 2 // 3])
    with pytest.raises(ImageError, match="truncated"):
        read_header(png[:-20])


def test_a_jpeg_with_an_exif_thumbnail_cut_after_the_thumbnail_is_truncated():
    img = Image.open(io.BytesIO(JPEG))
    thumb = io.BytesIO()
    img.resize((32, 24)).save(thumb, "JPEG")
    exif = Image.Exif()
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif.tobytes() + thumb.getvalue())
    data = buf.getvalue()
    read_header(data)
    with pytest.raises(ImageError, match="truncated"):
        read_header(data[: len(data) // 2])


def test_a_second_run_into_the_same_output_directory_is_refused(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.jpg").write_bytes(JPEG)
    with output_lock(tmp_path / "out"):
        with pytest.raises(InputError, match="another dcgan-data run"):
            ingest(src, tmp_path / "out", size=32, workers=1)
        assert not list((tmp_path / "out").glob("shard-*"))
    report = ingest(src, tmp_path / "out", size=32, workers=1)  # released: runs
    assert report["written"] == 1 and (tmp_path / "out" / LOCK_FILE).exists()


@pytest.mark.parametrize("orientation", [6, 8, 3, 5])
def test_rgba_images_are_turned_upright_and_hw_records_the_upright_size(tmp_path, orientation):
    rgb = np.asarray(Image.open(PHOTOS[0]).convert("RGB"))[:90, :160]
    rgba = Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    rgba.save(buf, "PNG", exif=exif.tobytes())
    from PIL import ImageOps

    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(buf.getvalue())))
                          .convert("RGB"))
    got, conversion = decode_image(buf.getvalue())
    assert conversion == "rgba" and got.shape == expected.shape
    assert np.abs(got.astype(int) - expected).max() <= 1
    src = tmp_path / "src"
    src.mkdir()
    (src / "x.png").write_bytes(buf.getvalue())
    ingest(src, tmp_path / "out", size=32, workers=1)
    assert ShardSet(tmp_path / "out").source_hw().tolist() == [list(expected.shape[:2])]


def test_jpeg_exif_orientation_gives_the_upright_size_in_hw(tmp_path):
    img = Image.open(PHOTOS[0])
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif.tobytes())
    rgb, _ = decode_image(buf.getvalue())
    assert rgb.shape[:2] == (img.width, img.height)
    src = tmp_path / "src"
    src.mkdir()
    (src / "x.jpg").write_bytes(buf.getvalue())
    ingest(src, tmp_path / "out", size=32, workers=1)
    assert ShardSet(tmp_path / "out").source_hw().tolist() == [[img.width, img.height]]


def test_output_files_honour_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        import importlib

        import dcgan_data.files as files

        importlib.reload(files)
        files.atomic_write_bytes(tmp_path / "x", b"data")
    finally:
        os.umask(old)
        importlib.reload(files)
    assert stat.S_IMODE((tmp_path / "x").stat().st_mode) == 0o644


def test_temporaries_left_by_a_killed_run_are_removed_by_the_next(tmp_path, crops64):
    out = tmp_path / "out"
    (out / "checkpoints").mkdir(parents=True)
    stale = [out / ".shard-00000.npy.abc123.tmp", out / "checkpoints" / ".last.pt.x1.tmp"]
    for path in stale:
        path.write_bytes(b"half a file")
    with output_lock(out):
        pass
    assert not any(p.exists() for p in stale)


def test_a_shard_without_its_hw_file_fails_inspect(tmp_path, crops64):
    out = write_shards(tmp_path / "s", crops64[:10])
    (out / "shard-00000.hw.npy").unlink()
    summary, _ = inspect(out)
    assert not summary["verified"] and "hw.npy" in summary["problems"][0]
    with pytest.raises(InputError, match="hw.npy"):
        ShardSet(out).source_hw()


def test_shard_writer_still_refuses_mismatched_rows(tmp_path, crops64):
    writer = ShardWriter(tmp_path / "w", (64, 64, 3))
    with pytest.raises(ValueError):
        writer.write(0, crops64[:2], ["only one"])
    atomic_write_bytes(tmp_path / "w" / "other", b"")


def test_a_truncated_data_mdb_is_named_not_a_sigbus(tmp_path):
    values = {hashlib.sha1(bytes([i])).hexdigest().encode(): JPEG for i in range(40)}
    write_lmdb(tmp_path / "db", values)
    mdb = tmp_path / "db" / "data.mdb"
    with open(mdb, "r+b") as f:
        f.truncate(mdb.stat().st_size // 2)
    with pytest.raises(InputError, match="truncated"):
        ingest(tmp_path / "db", tmp_path / "out", size=32, workers=1)
