"""dedup's typed report: a real run writes every attribute the report page's section reads."""

from __future__ import annotations

import json

import numpy as np

from dcgan_data.dedup import stage as dd
from dcgan_data.dedup.options import SELF_FIT_MIN_ROWS
from dcgan_data.dedup.report import DedupReport
from dcgan_data.dedup.section import dedup_section
from dcgan_data.hashmodel.options import HashConfig
from dcgan_data.report.html import Page, Stage, Summary
from dcgan_data.testing.photos import photo_crops, write_shards


def test_a_run_writes_the_report_its_section_reads(tmp_path):
    crops = photo_crops(SELF_FIT_MIN_ROWS, size=32, seed=3)
    copies = np.clip(crops[:12].astype(np.int16) + 12, 0, 255).astype(np.uint8)  # brighter
    src = write_shards(tmp_path / "src", np.concatenate([crops, crops[12:20], copies]),
                       rows_per_shard=120)
    out = tmp_path / "run" / "dedup"
    returned = dd.dedup(src, out, self_fit=True, workers=1,
                        config=HashConfig(min_steps=20, max_steps=20, batch_size=64))

    report = DedupReport.read(out / dd.REPORT, strict=True)  # every key present
    assert report.to_json() == json.loads((out / dd.REPORT).read_text()) == \
        json.loads(json.dumps(returned))
    assert report.removed > 0 and report.kept + report.removed == report.images
    assert report.grouping.verified and report.grouping.self_fit is not None
    assert report.grouping.self_fit.rows_sampled == SELF_FIT_MIN_ROWS + 20
    assert len(report.bits.bit_rates) == 128 and report.largest_groups[0].size >= 2

    summary = Summary()
    page = Page(tmp_path / "run", tmp_path / "run" / "report.html")
    section = dedup_section(page, Stage("dedup", out, json.loads((out / dd.REPORT).read_text()),
                                        out / dd.REPORT, 0.0), summary)
    headline = dict(section.headline)
    assert headline["removed as duplicates"].startswith(f"{report.removed} (")
    assert "decided by" in headline and headline["synthetic copies found (held back)"] != "-"
    assert len(section.figures) == 4  # group sizes, distances, bits, the sheet
    assert section.collapsed and section.links and summary.cards
