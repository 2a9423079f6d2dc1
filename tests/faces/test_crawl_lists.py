"""Crawl lists in the ecosystem's formats: compressed text lists and Parquet URL lists."""

from __future__ import annotations

import bz2
import contextlib
import errno
import gzip
import json
import lzma
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from dcgan_data.core.errors import InputError
from dcgan_data.core.shards import ShardSet
from dcgan_data.faces import plain_list as plain_lists
from dcgan_data.faces.crawl_list import Entry, mark_repeats, plan_units, read_crawl, read_unit
from dcgan_data.faces.plain_list import plain_list
from dcgan_data.testing.photos import FACES, PHOTOS
from dcgan_data_cli.main import cli

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
zstandard = pytest.importorskip("zstandard")

TSV = "name\turl\n" + "".join(f"n{i}\thttp://x.org/{i}.jpg\n" for i in range(12))
COMPRESS = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress,
            ".zst": lambda data: zstandard.ZstdCompressor().compress(data)}


@pytest.mark.parametrize("suffix", sorted(COMPRESS))
def test_compressed_lists_read_like_the_plain_one(tmp_path, suffix):
    (tmp_path / "plain.tsv").write_text(TSV)
    packed = tmp_path / f"list.tsv{suffix}"
    packed.write_bytes(COMPRESS[suffix](TSV.encode()))
    copy = plain_list(packed, tmp_path / "out")
    assert copy == tmp_path / "out" / "crawl_list" / "list.tsv"
    assert read_crawl(copy) == read_crawl(tmp_path / "plain.tsv")
    assert read_crawl(copy)[0][0] == Entry(2, "http://x.org/0.jpg", "n0")
    stamp = copy.stat().st_mtime_ns
    assert plain_list(packed, tmp_path / "out").stat().st_mtime_ns == stamp  # made once
    assert plain_list(tmp_path / "plain.tsv", tmp_path / "out") == tmp_path / "plain.tsv"


def test_truncated_compressed_list_is_a_clear_error(tmp_path):
    packed = tmp_path / "list.txt.gz"
    packed.write_bytes(gzip.compress(TSV.encode())[:-12])
    with pytest.raises(InputError, match="not a complete gz file"):
        plain_list(packed, tmp_path / "out")
    assert not list((tmp_path / "out").rglob("list.txt"))


def test_nul_byte_and_odd_separators_are_one_malformed_line_each(tmp_path):
    crawl = tmp_path / "list.txt"
    crawl.write_bytes(b"http://x.org/1.jpg\nhttp://x.org/\x002.jpg\nbad\x1cname.jpg\n"
                      b"http://x.org/3.jpg\n")
    entries, malformed = read_crawl(crawl)
    assert [e.line for e in entries] == [1, 4]
    assert [line for line, _ in malformed] == [2, 3]
    assert all("control character" in reason for _, reason in malformed)


def write_parquet(path, rows: list[dict], row_group_size: int):
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=row_group_size)


def test_parquet_lists_become_json_lines_numbered_by_row(tmp_path):
    rows = [{"URL": f"http://x.org/{i}.jpg", "TEXT": f"caption {i}", "who": f"p{i % 3}"}
            for i in range(25)]
    rows[7]["URL"] = None
    crawl = tmp_path / "laion.parquet"
    write_parquet(crawl, rows, row_group_size=6)
    listing = plain_list(crawl, tmp_path / "out", label_col="who")
    assert listing == tmp_path / "out" / "crawl_list" / "laion.parquet.jsonl"
    units = plan_units(listing, 10, label_col="who")
    assert [(u.first_line, u.lines) for u in units] == [(1, 10), (11, 10), (21, 5)]
    entries, malformed = read_unit(listing, units[1], label_col="who")
    assert entries[0] == Entry(11, "http://x.org/10.jpg", "p1") and len(entries) == 10
    entries, malformed = read_crawl(crawl, label_col="who")
    assert len(entries) == 24 and malformed == [(8, "no url field")]
    assert read_crawl(crawl, url_col="TEXT")[1][0] == (1, "neither a URL nor a path: "
                                                          "'caption 0'")

    rows[15]["URL"] = "http://x.org/15b.jpg"
    write_parquet(crawl, rows, row_group_size=6)
    listing = plain_list(crawl, tmp_path / "out", label_col="who")  # made again: the list changed
    changed = [a.digest != b.digest for a, b in zip(units, plan_units(listing, 10), strict=True)]
    assert changed == [False, True, False]
    with pytest.raises(InputError, match="no label column"):
        read_crawl(crawl, label_col="label")
    with pytest.raises(InputError, match="no url column"):
        read_crawl(crawl, url_col="url")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(InputError, match="unreadable Parquet"):
        read_crawl(tmp_path / "broken.parquet")


def test_a_parquet_list_is_read_once_however_many_units(tmp_path, monkeypatch):
    crawl = tmp_path / "one_group.parquet"
    write_parquet(crawl, [{"url": f"http://x.org/{i}.jpg"} for i in range(2000)],
                  row_group_size=2000)
    decoded = []
    for name in ("read", "read_row_group", "read_row_groups", "iter_batches"):
        original = getattr(pq.ParquetFile, name)

        def counted(self, *args, _original=original, **kwargs):
            got = _original(self, *args, **kwargs)
            if hasattr(got, "num_rows"):
                decoded.append(got.num_rows)
                return got
            return (decoded.append(batch.num_rows) or batch for batch in got)

        monkeypatch.setattr(pq.ParquetFile, name, counted)
    listing = plain_list(crawl, tmp_path / "out")
    units = mark_repeats(listing, plan_units(listing, 10))
    entries = [e for u in units for e in read_unit(listing, u)[0]]
    assert len(units) == 200 and len(entries) == 2000
    assert sum(decoded) == 2000  # planning and every unit's read: each row decoded once


def test_a_full_disk_while_unpacking_is_named_not_blamed_on_the_list(tmp_path, monkeypatch):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    packed = tmp_path / "list.txt.gz"
    packed.write_bytes(gzip.compress(TSV.encode()))

    @contextlib.contextmanager
    def full_disk(path):
        yield Path("/dev/full")

    monkeypatch.setattr(plain_lists, "atomic_path", full_disk)
    with pytest.raises(OSError, match=r"No space left on device \(ENOSPC\)") as info:
        plain_list(packed, tmp_path / "out")
    assert info.value.errno == errno.ENOSPC and not isinstance(info.value, InputError)


def test_a_decompressed_list_is_bounded(tmp_path):
    packed = tmp_path / "list.txt.zst"
    packed.write_bytes(zstandard.ZstdCompressor().compress(b"\n" * 100_000))
    with pytest.raises(InputError, match="over 50000 bytes as a plain list"):
        plain_list(packed, tmp_path / "out", max_bytes=50_000)
    assert not list((tmp_path / "out").rglob("list.txt"))
    assert plain_list(packed, tmp_path / "out", max_bytes=100_000).stat().st_size == 100_000


def test_faces_reads_a_gzipped_list_with_a_nul_line_and_a_parquet_list(tmp_path):
    face = next(p for p in FACES if p.name == "astronaut.jpg")
    lines = [f"astronaut\t{face}", f"photo\t{PHOTOS[0]}", "bad\x00line.jpg", f"{PHOTOS[1]}"]
    crawl = tmp_path / "crawl.txt.gz"
    crawl.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    result = CliRunner().invoke(cli, ["faces", str(crawl), "-o", str(tmp_path / "a"),
                                      "--processes", "1", "--local-root", "/"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "a" / "faces_report.json").read_text())
    assert report["entries"] == 3 and report["failed_by_reason"] == {"malformed": 1}
    assert report["kept"] == 1 and ShardSet(tmp_path / "a").keys() == [f"{face}#0"]
    assert (tmp_path / "a" / "labels.csv").read_text().splitlines()[1] == f"{face}#0,astronaut"

    table = tmp_path / "list.parquet"
    write_parquet(table, [{"image_link": str(p), "person": p.stem} for p in [face, *PHOTOS[:2]]],
                  row_group_size=2)
    result = CliRunner().invoke(cli, ["faces", str(table), "-o", str(tmp_path / "b"),
                                      "--processes", "1", "--local-root", "/",
                                      "--url-col", "image_link", "--label-col", "person",
                                      "--lines-per-shard", "2"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "b" / "faces_report.json").read_text())
    assert report["entries"] == 3 and report["shards"] == 2 and report["kept"] == 1
    assert report["params"]["url_col"] == "image_link"
    assert (tmp_path / "b" / "labels.csv").read_text().splitlines()[1] == f"{face}#0,astronaut"
