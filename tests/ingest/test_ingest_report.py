"""A real ingest writes every IngestReport attribute, and the report page's section reads them."""

import json
import shutil

from dcgan_data.ingest.report import IngestReport
from dcgan_data.ingest.section import ingest_section
from dcgan_data.ingest.stage import REPORT, ingest
from dcgan_data.report.html import Page, Stage, Summary
from dcgan_data.testing.photos import PHOTOS


def test_ingest_report_reads_back_strict_and_draws_its_section(tmp_path):
    src = tmp_path / "photos"
    for i, photo in enumerate(PHOTOS[:5]):
        (src / ("a" if i % 2 else "b")).mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, src / ("a" if i % 2 else "b") / photo.name)
    (src / "b" / "cut.jpg").write_bytes(PHOTOS[5].read_bytes()[:300])
    out = tmp_path / "out"
    returned = ingest(src, out, size=32, workers=1, rows_per_shard=2)

    path = out / REPORT
    report = IngestReport.read(path, strict=True)  # every attribute written
    assert report.to_json() == json.loads(path.read_text()) == returned  # today's keys, in order
    unset = [key for key, value in returned.items() if value is None]
    assert not unset, f"the stage no longer fills {unset}"
    assert (report.items_read, report.written, report.failed, report.shards) == (6, 5, 1, 3)
    assert report.failed_items[0].key == "b/cut.jpg" and report.label_classes == 2
    assert report.failed_by_reason == {report.failed_items[0].reason: 1}

    page, summary = Page(tmp_path, tmp_path / "report.html"), Summary()
    section = ingest_section(page, Stage("ingest", out, report.to_json(), path, 0.0), summary)
    headline = dict(section.headline)
    assert headline["images read"] == "6" and headline["written"] == "5"
    assert headline["source"] == f"folder {src}"
    assert headline["size"] == "32 x 32 px, 3 shard(s)"
    assert "b/cut.jpg" in section.collapsed[0]
    assert any("ingest_status" in link for link in section.links)
    assert summary.cards == [("6", "images in", "5 written"),
                             ("1", "failed in ingest", f"{report.failed_items[0].reason} 1")]
