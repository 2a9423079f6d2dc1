"""faces_report.json as a typed report: a real run writes every attribute the report page's
faces section reads, and the section shows them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_crawl import ImageServer

from dcgan_data.core.errors import InputError
from dcgan_data.faces.options import FaceOptions, FetchOptions
from dcgan_data.faces.report import FacesParams, FacesReport
from dcgan_data.faces.section import faces_section
from dcgan_data.faces.stage import faces
from dcgan_data.report.html import Page, Stage, Summary
from dcgan_data.testing.photos import FACES

FACE = {p.name: p for p in FACES}


@pytest.fixture(scope="module")
def server():
    srv = ImageServer()
    yield srv
    srv.close()


def test_a_real_run_writes_every_value_the_section_reads(tmp_path, server):
    crawl = tmp_path / "list.tsv"
    crawl.write_text("name\turl\n"
                     f"Eileen Collins\t{server.url}/img/astronaut.jpg\n"
                     f"gone\t{server.url}/404\n"
                     f"Messi\t{FACE['messi5.jpg']}\n"
                     f"again\t{server.url}/img/astronaut.jpg\n")
    out = tmp_path / "faces"
    options = FaceOptions(detector="haar", min_face=24, fetch=FetchOptions(
        timeout=2.0, retries=0, allow_private_addresses=True, local_root=Path("/")))
    returned = faces(crawl, out, options, processes=1, lines_per_shard=2)

    path = out / "faces_report.json"
    report = FacesReport.read(path, strict=True)  # fails on any key the stage stops writing
    written = json.loads(path.read_text())
    assert report.to_json() == written == json.loads(json.dumps(returned))
    assert (report.entries, report.fetched, report.failed_by_reason) == (
        4, 2, {"http_404": 1, "repeated_url": 1})
    assert report.params.crawl == "list.tsv" and report.params.min_score == 5.0
    assert "url_col" not in written["params"]  # written only when set, as before
    assert report.shards == report.units_run_now == 2 and report.sheet == "faces.png"

    stage = Stage("faces", out, written, path, path.stat().st_mtime)
    summary = Summary()
    section = faces_section(Page(tmp_path, tmp_path / "report.html"), stage, summary)
    headline = dict(section.headline)
    assert headline["crawl list"] == "list.tsv: 4 images listed"
    assert headline["fetched / decoded"] == "2 / 2"
    assert headline["failed"] == "2  http_404 1, repeated_url 1"
    assert headline["faces found / kept"] == f"{report.boxes} / {report.kept}"
    assert headline["detector"] == "haar, faces of at least 24 px, score >= 5.0"
    assert section.seconds == report.wall_seconds_this_run
    links = " ".join(section.links)
    assert "faces_status" in links and "labels.csv" in links and "faces.csv" in links
    assert [card[:2] for card in summary.cards] == [("4", "images listed"),
                                                   (str(report.kept), "faces kept")]

    # a report from before the status table and --max-list-bytes still reads, and draws
    old = {**written, "options": {k: v for k, v in written["options"].items()
                                  if k != "max_list_bytes"}}
    del old["status_table"]
    assert FacesReport.from_json(old).status_table is None
    faces_section(Page(tmp_path, tmp_path / "report.html"), Stage("faces", out, old, path, 0.0),
                  Summary())


def test_reading_a_report_names_a_missing_key_and_optional_params_stay_unwritten():
    params = {"stage": "faces", "crawl": "c.txt", "lines_per_shard": 4, "detector": "haar",
              "min_face": 24, "min_score": 5.0, "margin": 0.25, "size": 64}
    assert FacesParams.from_json(params, strict=True).url_col is None
    assert FacesParams.from_json({**params, "url_col": "link"}).to_json()["url_col"] == "link"
    with pytest.raises(InputError, match="'detector'"):
        FacesParams.from_json({k: v for k, v in params.items() if k != "detector"})
    with pytest.raises(InputError, match="'params'"):
        FacesReport.from_json({"stage": "faces", "entries": 4})
