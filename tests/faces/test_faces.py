"""Face detection on real photos, crops, and the faces stage end to end against a local server.

The expected boxes were labelled by hand on the photos (and the detected crops looked at).
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from click.testing import CliRunner
from test_crawl import ImageServer, closed_port

from dcgan_data.core import status
from dcgan_data.core.errors import InputError
from dcgan_data.core.images import decode_image
from dcgan_data.core.shards import ShardSet
from dcgan_data.core.status import read_table
from dcgan_data.faces.detect import Box, crop_face, is_kept, make_detector
from dcgan_data.faces.options import FaceOptions, FetchOptions
from dcgan_data.faces.stage import faces
from dcgan_data.testing.photos import FACES, PHOTOS, load_photo
from dcgan_data_cli.main import cli

FACE = {p.name: p for p in FACES}
# Hand-labelled frontal faces (x, y, w, h): brow-to-chin, ear-to-ear, in source pixels.
LABELS = {
    "astronaut.jpg": (180, 62, 88, 108),
    "messi5.jpg": (226, 92, 30, 40),
    "basketball1.jpg": (71, 92, 32, 40),  # the man on the right faces away: not a frontal face
}


def iou(a: tuple, b: tuple) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    return w * h / (aw * ah + bw * bh - w * h)


@pytest.fixture(scope="module")
def mtcnn():
    return make_detector("mtcnn", min_face=24)


@pytest.mark.parametrize("name", sorted(LABELS))
def test_mtcnn_finds_the_hand_labelled_face_and_nothing_else(mtcnn, name):
    boxes = [b for b in mtcnn.detect(load_photo(FACE[name])) if b.score >= 0.9]
    assert len(boxes) == 1
    box = boxes[0]
    assert iou((box.x, box.y, box.w, box.h), LABELS[name]) > 0.6


def test_mtcnn_on_skimage_astronaut_rgb_array(mtcnn):
    (box,) = mtcnn.detect(skimage.data.astronaut())
    assert box.score > 0.99
    assert iou((box.x, box.y, box.w, box.h), LABELS["astronaut.jpg"]) > 0.6


def test_mtcnn_keeps_no_box_on_photos_without_people():
    detector = make_detector("mtcnn", min_face=64)
    for path in PHOTOS:
        assert [b for b in detector.detect(load_photo(path)) if b.score >= 0.9] == [], path.name


def test_haar_finds_the_same_faces():
    haar = make_detector("haar", min_face=24)
    for name, label in LABELS.items():
        boxes = haar.detect(load_photo(FACE[name]))
        best = max(iou((b.x, b.y, b.w, b.h), label) for b in boxes)
        assert best > 0.5, name
    with pytest.raises(InputError, match="unknown detector"):
        make_detector("dlib")


def test_crop_is_a_square_around_the_box_kept_inside_the_image():
    rgb = load_photo(FACE["astronaut.jpg"])
    box = Box(180, 62, 88, 108, 1.0)
    side = round(108 * 1.5)  # max(w, h) grown by 25% on each side
    top, left = 62 + 54 - side // 2, 180 + 44 - side // 2
    expected = crop_face(rgb[top : top + side, left : left + side], Box(0, 0, side, side, 1), 0, 64)
    assert np.array_equal(crop_face(rgb, box, 0.25, 64), expected)
    # a box in the corner: the square shifts inside the image instead of padding
    corner = crop_face(rgb, Box(0, 0, 40, 40, 1.0), 0.5, 32)
    assert np.array_equal(corner, crop_face(rgb[:80, :80], Box(0, 0, 80, 80, 1), 0, 32))
    # a face larger than the image: the whole short side
    assert crop_face(rgb, Box(0, 0, 512, 512, 1.0), 0.5, 64).shape == (64, 64, 3)
    assert is_kept(box, 64, 0.9) and not is_kept(box, 100, 0.9) and not is_kept(box, 64, 1.01)


# ---------------------------------------------------------------------------- the stage


@pytest.fixture(scope="module")
def server():
    srv = ImageServer()
    yield srv
    srv.close()


def crawl_list(tmp_path, url: str) -> tuple:
    (tmp_path / "local").mkdir()
    shutil.copy(FACE["basketball1.jpg"], tmp_path / "local" / "b.jpg")
    lines = [
        "# faces crawl",
        f"Eileen Collins\t{url}/img/astronaut.jpg",  # line 2: a face, kept
        f"{url}/img/messi5.jpg",  # 3: a smaller face, kept
        f"{url}/img/skimage_coffee.jpg",  # 4: no face
        f"{url}/404",
        f"{url}/flaky/faces",  # 6: 500, then the image on the retry
        f"{url}/slow",
        f"{url}/loop",
        f"{url}/html",
        f"{url}/truncated.jpg",  # 10
        f"{url}/big",
        f"{url}/noai.jpg",
        f"http://127.0.0.1:{closed_port()}/dead.jpg",
        "a\tb\tc",
        "local/b.jpg",  # 15: a local path beside the list, a face, kept
    ]
    crawl = tmp_path / "crawl.txt"
    crawl.write_text("\n".join(lines) + "\n")
    options = FaceOptions(
        min_face=24,
        keep_originals=tmp_path / "originals",
        fetch=FetchOptions(timeout=0.5, retries=1, backoff=0.05, max_bytes=2_000_000,
                           allow_private_addresses=True),
    )
    return crawl, options


def test_faces_stage_end_to_end_with_every_kind_of_bad_input(tmp_path, server):
    crawl, options = crawl_list(tmp_path, server.url)
    out = tmp_path / "faces"
    report = faces(crawl, out, options, processes=1, lines_per_shard=4)

    assert report["failed_by_reason"] == {
        reason: 1 for reason in ["http_404", "timeout", "too_many_redirects", "not_an_image",
                                 "truncated", "too_large", "noai", "dead_url", "malformed"]
    }
    assert report["failed_examples"]["http_404"] == [f"line 5: {server.url}/404 (Not Found)"]
    assert report["failed_examples"]["malformed"][0].startswith("line 14:")
    assert report["entries"] == 13 and report["fetched"] == 6  # 5 images + the truncated one
    assert report["decoded"] == 5 and report["images_with_face"] == 3
    assert report["kept"] == 3 and report["shards"] == 4

    shards = ShardSet(out)
    keys = [f"{server.url}/img/astronaut.jpg#0", f"{server.url}/img/messi5.jpg#0",
            "local/b.jpg#0"]
    assert shards.keys() == keys and shards.shape == (64, 64, 3)
    assert shards.source_hw().tolist() == [[512, 512], [342, 548], [480, 640]]
    with open(out / "faces.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["source", "x", "y", "w", "h", "score", "kept"]
    assert len(rows) == report["boxes"]  # every box, kept or not
    for row in rows:
        box = Box(*(int(row[k]) for k in "xywh"), float(row["score"]))
        assert row["kept"] == str(int(is_kept(box, 24, 0.9)))
    for key, name in zip(keys, ["astronaut.jpg", "messi5.jpg", "basketball1.jpg"], strict=True):
        source = key.rsplit("#", 1)[0]
        row = next(r for r in rows if r["source"] == source)  # the best box comes first
        assert iou(tuple(int(row[k]) for k in "xywh"), LABELS[name]) > 0.5, name
    box = tuple(int(rows[0][k]) for k in "xywh")
    rgb, _ = decode_image(FACE["astronaut.jpg"].read_bytes())
    assert np.array_equal(shards.load([0])[0], crop_face(rgb, Box(*box, 1.0), 0.25, 64))
    assert (out / "labels.csv").read_text() == f"key,label\n{keys[0]},Eileen Collins\n"
    assert (out / "faces.png").read_bytes()[:4] == b"\x89PNG"
    fates = {r["line"]: r for r in read_table(out / report["status_table"])}
    assert sorted(fates) == list(range(2, 16))  # every line but the comment, once
    assert {line: r["status"] for line, r in fates.items()} == {
        2: "ok", 3: "ok", 4: "ok", 5: "http_404", 6: "ok", 7: "timeout",
        8: "too_many_redirects", 9: "not_an_image", 10: "truncated", 11: "too_large",
        12: "noai", 13: "dead_url", 14: "malformed", 15: "ok"}
    assert fates[2]["label"] == "Eileen Collins" and fates[3]["url"].endswith("/messi5.jpg")
    assert (fates[2]["width"], fates[2]["height"], fates[2]["faces_kept"]) == (512, 512, 1)
    assert fates[4]["faces_found"] == 0 and fates[5]["detail"] == "Not Found"
    assert fates[5]["width"] is None and fates[14]["url"] is None
    assert sum(r["faces_kept"] or 0 for r in fates.values()) == report["kept"]
    kept_files = sorted(p.relative_to(tmp_path / "originals").as_posix()
                        for p in (tmp_path / "originals").rglob("*.*"))
    assert kept_files == ["00000/000000002.jpg", "00000/000000003.jpg", "00000/000000004.jpg",
                          "00001/000000006.jpg", "00002/000000010.jpg", "00003/000000015.jpg"]

    # re-running fetches nothing; losing one unit's shard refetches only that unit's lines
    hits = dict(server.hits)
    again = faces(crawl, out, options, processes=1, lines_per_shard=4)
    assert server.hits == hits and again["units_resumed"] == 4
    assert again["kept"] == 3 and again["failed_by_reason"] == report["failed_by_reason"]
    (out / "shard-00001.json").unlink()
    faces(crawl, out, options, processes=1, lines_per_shard=4)
    refetched = {path for path, n in server.hits.items() if n != hits.get(path)}
    # lines 6-9: units count entries, and the comment on line 1 is none
    assert refetched == {"/flaky/faces", "/slow", "/loop", "/html"}
    assert ShardSet(out).keys() == keys
    assert {r["line"]: r for r in read_table(out / report["status_table"])} == fates

    with pytest.raises(InputError, match="different run"):
        faces(crawl, out, FaceOptions(min_face=48), processes=1, lines_per_shard=4)


def test_killed_run_resumes_without_refetching_finished_units(tmp_path, server):
    crawl = tmp_path / "crawl.txt"
    crawl.write_text("".join(f"{server.url}/delay/{i}\n" for i in range(24)))
    out = tmp_path / "out"
    args = ["faces", str(crawl), "-o", str(out), "--processes", "1", "--workers", "1",
            "--lines-per-shard", "4", "--allow-private-addresses"]
    run = subprocess.Popen([sys.executable, "-m", "dcgan_data", *args])
    deadline = time.monotonic() + 60
    while not (out / "shard-00001.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    run.kill()  # SIGKILL: no clean-up at all
    run.wait()
    done = sorted(int(p.name[6:11]) for p in out.glob("shard-*[0-9].json"))
    assert 2 <= len(done) < 6 and not (out / "manifest.json").exists()
    hits = dict(server.hits)

    result = CliRunner().invoke(cli, args)  # the served photo holds no face: exit 1, said
    assert result.exit_code == 1 and "no face kept" in result.output
    assert ShardSet(out).num_shards == 6
    for i in range(24):
        path = f"/delay/{i}"
        assert server.hits[path] == (hits[path] if i // 4 in done else hits.get(path, 0) + 1)
    assert all(hits[f"/delay/{i}"] == 1 for i in range(24) if i // 4 in done)


def test_cli_with_local_paths_on_two_processes(tmp_path):
    crawl = tmp_path / "list.jsonl"
    names = [FACE["astronaut.jpg"], *PHOTOS[:3], tmp_path / "gone.jpg"]
    crawl.write_text("".join(f'{{"url": "{p}", "name": "{p.stem}"}}\n' for p in names))
    out = tmp_path / "out"
    args = ["faces", str(crawl), "-o", str(out), "--processes", "2", "--lines-per-shard", "2",
            "--local-root", "/"]  # the photos are outside the list's folder
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "5 entries, 4 fetched, 1 failed" in result.output and "1 kept" in result.output
    assert "missing_file: 1" in result.output
    assert ShardSet(out).keys() == [f"{FACE['astronaut.jpg']}#0"]

    result = CliRunner().invoke(cli, ["faces", str(crawl), "-o", str(out), "--detector", "x"])
    assert result.exit_code == 2


def test_status_table_is_gzipped_csv_without_pyarrow(tmp_path, monkeypatch):
    monkeypatch.setattr(status, "_pyarrow", lambda: None)
    crawl = tmp_path / "list.txt"
    crawl.write_text(f"{FACE['astronaut.jpg']}\n{tmp_path / 'gone.jpg'}\n")
    options = FaceOptions(detector="haar", fetch=FetchOptions(local_root=Path("/")))
    report = faces(crawl, tmp_path / "out", options, processes=1)
    assert report["status_table"] == "faces_status.csv.gz"
    rows = read_table(tmp_path / "out" / "faces_status.csv.gz")
    assert [(r["line"], r["status"], r["faces_kept"]) for r in rows] == [
        (1, "ok", 1), (2, "missing_file", None)]
