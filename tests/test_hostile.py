"""Hostile input, faults and concurrency: one test per case of the reliability red team."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import stat
import subprocess
import sys
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import lmdb
import numpy as np
import pytest
from PIL import Image

from dcgan_data.core.errors import InputError
from dcgan_data.core.files import (
    LOCK_FILE,
    atomic_write_bytes,
    from_spreadsheet_text,
    output_lock,
    write_csv,
)
from dcgan_data.core.images import ImageError, decode_image, encode_image, read_header
from dcgan_data.core.shards import (
    DEFAULT_SHARD_BYTES,
    ShardSet,
    ShardWriter,
    decode_key,
    encode_key,
    rows_per_shard_of,
)
from dcgan_data.faces import fetch as fetching
from dcgan_data.faces.crawl_list import plan_units, read_crawl, read_unit
from dcgan_data.faces.fetch import FetchError, fetch
from dcgan_data.faces.options import FaceOptions, FetchOptions
from dcgan_data.faces.stage import faces
from dcgan_data.ingest.inspect import inspect
from dcgan_data.ingest.sources import FolderSource
from dcgan_data.ingest.stage import ingest
from dcgan_data.testing.photos import FACES, PHOTOS, write_shards

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

        import dcgan_data.core.files as files

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


# ---------------------------------------------------------------------------- crawl lists


def test_unicode_line_separators_stay_inside_their_crawl_line(tmp_path):
    crawl = tmp_path / "crawl.txt"
    crawl.write_text("Ann\u2028Lee\thttp://x.org/a.jpg\nBo\x85b\x1cc\thttp://x.org/b.jpg\r\n"
                     "Cy\x0bd\thttp://x.org/c.jpg\n", encoding="utf-8")
    entries, malformed = read_crawl(crawl)
    assert malformed == []
    assert [(e.line, e.label) for e in entries] == [(1, "Ann\u2028Lee"), (2, "Bo\x85b\x1cc"),
                                                    (3, "Cy\x0bd")]


def test_quoted_csv_fields_may_hold_line_breaks_and_units_never_cut_a_record(tmp_path):
    crawl = tmp_path / "crawl.csv"
    crawl.write_text('url,name\nhttp://x.org/a.jpg,"Ann\nLee"\nhttp://x.org/b.jpg,"say ""hi""\n'
                     'twice\n"\nhttp://x.org/c.jpg,Cy\n', encoding="utf-8")
    entries, malformed = read_crawl(crawl)
    assert malformed == []
    assert [(e.line, e.source, e.label) for e in entries] == [
        (2, "http://x.org/a.jpg", "Ann\nLee"), (4, "http://x.org/b.jpg", 'say "hi"\ntwice\n'),
        (7, "http://x.org/c.jpg", "Cy")]
    units = plan_units(crawl, 1)
    assert [u.lines for u in units] == [2, 3, 1]
    assert [e.label for u in units for e in read_unit(crawl, u)[0]] == [e.label for e in entries]


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(tmp_path):
    cells = ["=HYPERLINK(\"http://evil\")", "+1", "-2+3", "@SUM(A1)", "\tx", "'quoted", "Ann"]
    write_csv(tmp_path / "t.csv", ["label", "n"], [[c, -1] for c in cells],
              spreadsheet_safe=True)
    with open(tmp_path / "t.csv", newline="") as f:
        rows = list(csv.reader(f))[1:]
    assert [r[0][0] for r in rows[:6]] == ["'"] * 6 and rows[6][0] == "Ann"
    assert [from_spreadsheet_text(r[0]) for r in rows] == cells
    assert {r[1] for r in rows} == {"-1"}  # numbers are numbers


# ---------------------------------------------------------------------------- fetching


class HostileServer:
    """127.0.0.1 routes: /trickle-headers, /trickle-body (a byte every 0.2 s), /img,
    /to-ipv6 (redirects to [::1]), /busy (429 with Retry-After: 1 once, then the image)."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                outer.hits.append(self.path)
                try:
                    outer.route(self)
                except OSError:
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def route(self, h: BaseHTTPRequestHandler) -> None:
        if h.path == "/trickle-headers":
            for byte in b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nX-Pad: " + b"a" * 200:
                h.wfile.write(bytes([byte]))
                h.wfile.flush()
                time.sleep(0.2)
            return
        if h.path == "/busy" and self.hits.count("/busy") == 1:
            h.send_response(429)
            h.send_header("Retry-After", "1")
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        if h.path == "/to-ipv6":
            h.send_response(302)
            h.send_header("Location", f"http://[::1]:{self.port}/img")
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        h.send_response(200)
        h.send_header("Content-Type", "image/jpeg")
        h.send_header("Content-Length", str(len(JPEG)))
        h.end_headers()
        if h.path == "/trickle-body":
            for i in range(len(JPEG)):
                h.wfile.write(JPEG[i : i + 1])
                h.wfile.flush()
                time.sleep(0.2)
        h.wfile.write(JPEG)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def hostile():
    server = HostileServer()
    yield server
    server.close()


TRUSTED = FetchOptions(timeout=1.0, retries=0, backoff=0.01, allow_private_addresses=True)


@pytest.mark.parametrize("path", ["/trickle-headers", "/trickle-body"])
def test_timeout_is_a_wall_clock_deadline_for_the_whole_response(hostile, path):
    start = time.monotonic()
    with pytest.raises(FetchError) as info:
        fetch(hostile.url + path, TRUSTED)
    assert info.value.reason == "timeout"
    assert time.monotonic() - start < 2.5


def test_retry_after_on_429_is_honoured(hostile):
    start = time.monotonic()
    assert fetch(hostile.url + "/busy", replace(TRUSTED, retries=1)) == JPEG
    assert time.monotonic() - start >= 1.0 and hostile.hits == ["/busy", "/busy"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "0.0.0.0", "2130706433",
                                  "127.1"])
def test_internal_addresses_are_refused_by_default(hostile, host):
    with pytest.raises(FetchError) as info:
        fetch(f"http://{host}:{hostile.port}/img", replace(TRUSTED, allow_private_addresses=False))
    assert info.value.reason == "private_address"
    assert hostile.hits == []


def test_a_redirect_to_an_internal_address_is_refused(hostile, monkeypatch):
    # pretend 127.0.0.1 is a public host, so the first hop is fetched and the redirect is not
    monkeypatch.setattr(fetching, "_refused_address", lambda ip: ip != "127.0.0.1")
    strict = replace(TRUSTED, allow_private_addresses=False)
    assert fetch(hostile.url + "/img", strict) == JPEG
    with pytest.raises(FetchError) as info:
        fetch(hostile.url + "/to-ipv6", strict)
    assert info.value.reason == "private_address" and hostile.hits == ["/img", "/to-ipv6"]


def test_local_paths_are_regular_files_below_the_root_and_bounded(tmp_path):
    (tmp_path / "a.jpg").write_bytes(JPEG)
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    local = FetchOptions(base_dir=tmp_path, max_bytes=len(JPEG))
    assert fetch("a.jpg", local) == JPEG
    cases = [(str(fifo), local, "not_a_file"),
             ("/dev/zero", replace(local, local_root=Path("/")), "not_a_file"),
             ("/etc/passwd", local, "outside_local_root"),
             ("../../etc/passwd", local, "outside_local_root"),
             ("/etc/passwd", replace(local, local_root=Path("/")), "not_an_image")]
    for source, options, reason in cases:
        start = time.monotonic()
        with pytest.raises(FetchError) as info:
            fetch(source, options)
        assert info.value.reason == reason and time.monotonic() - start < 2
        assert "root:x:" not in str(info.value)  # a file's bytes never reach a report
    os.symlink("/etc/passwd", tmp_path / "link.jpg")
    with pytest.raises(FetchError, match="outside_local_root"):
        fetch("link.jpg", local)


def test_an_image_listed_on_several_lines_gives_one_set_of_rows_with_one_label(tmp_path):
    face = FACES[0]
    (tmp_path / face.name).write_bytes(face.read_bytes())
    crawl_list = tmp_path / "crawl.txt"
    crawl_list.write_text(f"Ann\t{face.name}\nBob\t{PHOTOS[0]}\nCy\t{face.name}\n")
    out = tmp_path / "out"
    report = faces(crawl_list, out, FaceOptions(detector="haar",
                                                fetch=FetchOptions(local_root=Path("/"))),
                   processes=1, lines_per_shard=2)
    keys = ShardSet(out).keys()
    assert keys and len(keys) == len(set(keys))
    with open(out / "labels.csv", newline="") as f:
        labels = list(csv.DictReader(f))
    assert {r["label"] for r in labels} == {"Ann"} and len(labels) == len(keys)
    assert report["failed_by_reason"] == {"repeated_url": 1}
    assert report["failed_examples"]["repeated_url"] == ["line 3: as line 1"]


def test_every_stage_that_writes_a_directory_takes_its_lock(tmp_path):
    from dcgan_data.dedup.stage import dedup
    from dcgan_data.ingest.pack import pack_images
    from dcgan_data.train.stage import train

    out = tmp_path / "out"
    stages = [lambda: ingest(tmp_path / "src", out), lambda: pack_images([str(PHOTOS[0])], out),
              lambda: faces(tmp_path / "list.txt", out), lambda: dedup(tmp_path / "src", out),
              lambda: train(tmp_path / "src", out)]
    with output_lock(out):
        for stage in stages:
            with pytest.raises(InputError, match="another dcgan-data run"):
                stage()


def test_the_lock_goes_when_its_holder_dies(tmp_path):
    hold = ("import sys, time\nfrom dcgan_data.core.files import output_lock\n"
            "with output_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", hold, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(InputError, match=f"pid {holder.pid}"):
            with output_lock(tmp_path):
                pass
    finally:
        holder.kill()
        holder.wait()
    with output_lock(tmp_path):  # SIGKILL released it
        pass


def test_an_unreadable_file_is_reported_unreadable_not_missing(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads a chmod-000 file")
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (src / name).write_bytes(JPEG)
    (src / "b.jpg").chmod(0)
    report = ingest(src, tmp_path / "out", size=32, workers=1)
    assert report["failed_by_reason"] == {"unreadable": 1}


def test_unreadable_items_are_named_unreadable(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.jpg").write_bytes(JPEG)
    source = FolderSource(src)
    (src / "a.jpg").unlink()
    (src / "a.jpg").mkdir()  # there, but reading it fails (EISDIR), as chmod 000 does
    (src / "gone.jpg").write_bytes(JPEG)
    (src / "gone.jpg").unlink()
    got = source.read_many(["a.jpg", "gone.jpg"])
    assert isinstance(got[0], ImageError) and got[0].reason == "unreadable" and got[1] is None


def test_ingest_refuses_an_output_inside_its_source(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.jpg").write_bytes(JPEG)
    for out in (src, src / "shards"):
        with pytest.raises(InputError, match="inside the source"):
            ingest(src, out, size=32, workers=1)
    assert not list(src.rglob("shard-*"))


def test_shard_size_is_bounded_in_bytes_not_rows():
    assert rows_per_shard_of((64, 64, 3)) == 65_536  # the old default, unchanged
    assert rows_per_shard_of((256, 256, 3)) * 256 * 256 * 3 <= DEFAULT_SHARD_BYTES


def test_train_and_dedup_refuse_a_damaged_shard(tmp_path, crops64):
    from dcgan_data.dedup.stage import dedup
    from dcgan_data.train.stage import train

    out = write_shards(tmp_path / "s", crops64[:100], rows_per_shard=50)
    path = out / "shard-00000.npy"
    data = bytearray(path.read_bytes())
    data[-64 * 64 * 3 * 50 // 2 :] = bytes(64 * 64 * 3 * 50 // 2)
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="sha256 mismatch"):
        train(out, tmp_path / "run", device="cpu", steps=1, batch_size=8)
    with pytest.raises(InputError, match="sha256 mismatch"):
        dedup(out, tmp_path / "dedup", device="cpu")
    assert not (tmp_path / "dedup" / "manifest.json").exists()


def test_blank_lines_make_no_unit_and_write_no_file(tmp_path):
    zstandard = pytest.importorskip("zstandard")
    blank = tmp_path / "blank.txt.zst"
    blank.write_bytes(zstandard.ZstdCompressor().compress(b"\n" * 100_000))
    with pytest.raises(InputError, match="no entries"):
        faces(blank, tmp_path / "a", FaceOptions(detector="haar"), processes=1)
    assert not list((tmp_path / "a").glob("shard-*"))
    crawl_list = tmp_path / "crawl.txt"
    crawl_list.write_text("\n" * 3000 + f"{PHOTOS[0]}\n" + "# note\n" * 3000)
    report = faces(crawl_list, tmp_path / "b", FaceOptions(
        detector="haar", fetch=FetchOptions(local_root=Path("/"))), processes=1)
    assert report["shards"] == 1 and report["lines"] == 6001 and report["fetched"] == 1
    assert len(list((tmp_path / "b").glob("shard-*.json"))) == 1


def test_duplicates_csv_writes_binary_keys_as_keys_txt_does(tmp_path, crops64):
    from dcgan_data.dedup import stage as dedup
    from dcgan_data.hashmodel import hashing

    keys = [hashlib.sha1(bytes([i])).digest().decode("utf-8", "surrogateescape")
            for i in range(41)]
    write_shards(tmp_path / "s", np.concatenate([crops64[:40], crops64[:1]]), keys)
    dedup.dedup(tmp_path / "s", tmp_path / "out", dry_run=True,
                config=hashing.HashConfig(min_steps=20, max_steps=20, batch_size=64))
    with open(tmp_path / "out" / dedup.CSV, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {(decode_key(from_spreadsheet_text(r["key"])),
             decode_key(from_spreadsheet_text(r["duplicate_of"]))) for r in rows} == {
        (keys[40], keys[0])}


def fake_run(run: Path, config: dict, weights_size: int = 64) -> Path:
    """A run directory whose last.pt holds `config` and G, D built at `weights_size`."""
    import torch

    from dcgan_data.train.checkpoint import FORMAT
    from dcgan_data.train.model import build

    g, d = build(weights_size, 100, 8, 8)
    (run / "checkpoints").mkdir(parents=True)
    torch.save({"format": FORMAT, "step": 3, "config": config, "data_rows": 1,
                "G": g.state_dict(), "D": d.state_dict(), "opt_G": {}, "opt_D": {}, "rng": {}},
               run / "checkpoints" / "last.pt")
    return run


CONFIG = {"size": 64, "nz": 100, "ngf": 8, "ndf": 8, "z_dist": "uniform"}


def test_export_weights_loads_them_into_the_networks_the_config_builds_first(tmp_path):
    from click.testing import CliRunner

    from dcgan_data_cli.main import cli

    cases = [(fake_run(tmp_path / "small", CONFIG, weights_size=32), "G's weights do not fit"),
             (fake_run(tmp_path / "no_nz", {k: v for k, v in CONFIG.items() if k != "nz"}),
              r"config cannot build the networks \(no nz\)")]
    for run, message in cases:
        for verb in (["export-weights", str(run), "-o", str(tmp_path / "w")],
                     ["sample", str(run), "-o", str(tmp_path / "grid.png"), "--device", "cpu"]):
            result = CliRunner().invoke(cli, verb)
            assert result.exit_code == 2, result.output
            assert len(result.output.strip().splitlines()) == 1
            assert re.search(message, result.output), result.output
        assert not (tmp_path / "w").exists() and not (tmp_path / "grid.png").exists()
    run = fake_run(tmp_path / "fits", CONFIG)
    result = CliRunner().invoke(cli, ["export-weights", str(run), "-o", str(tmp_path / "w")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == [
        "netD.pth", "netG.pth", "weights.json"]


def test_outputs_and_sizes_are_checked_before_the_work(tmp_path):
    from click.testing import CliRunner

    from dcgan_data.audit.stage import audit
    from dcgan_data_cli.main import cli

    run = fake_run(tmp_path / "run", CONFIG)
    result = CliRunner().invoke(cli, ["sample", str(run), "-n", "100000000", "-o",
                                      str(tmp_path / "grid.png"), "--device", "cpu"])
    assert result.exit_code == 2
    assert result.output.strip() == ("error: -n 100000000: 100,000,000 images of 64 px do not "
                                     "fit one grid (at most 16,384 of this size)")
    (tmp_path / "file").write_text("mine")
    # refused before the training shards are even opened (they do not exist here)
    with pytest.raises(InputError, match="-o .*file: exists and is not a directory"):
        audit(run, tmp_path / "no_shards", tmp_path / "file")
    with pytest.raises(InputError, match="-o .*: .*file is not a directory"):
        audit(run, tmp_path / "no_shards", tmp_path / "file" / "audit")
    result = CliRunner().invoke(cli, ["sample", str(run), "-o", str(tmp_path / "file" / "g.png"),
                                      "--device", "cpu"])
    assert result.exit_code == 2 and "file is not a directory" in result.output
    assert (tmp_path / "file").read_text() == "mine"
