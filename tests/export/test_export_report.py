"""A real export writes every ExportReport attribute, read back strict, with today's keys."""

import csv
import json

from dcgan_data.export.report import ExportReport
from dcgan_data.export.stage import REPORT, export
from dcgan_data.testing.photos import write_shards


def test_export_report_reads_back_strict_with_every_attribute_written(tmp_path, crops64):
    keys = [f"img{i}" for i in range(10)]
    src = write_shards(tmp_path / "s", crops64[:10], keys)
    with open(src / "labels.csv", "w", newline="") as f:
        csv.writer(f).writerows([("key", "label"), *[(k, "ab"[i % 2]) for i, k in
                                                     enumerate(keys)]])
    for fmt in ("stylegan", "folder"):
        returned = export(src, tmp_path / fmt, fmt, rows_per_part=4, threads=1)
        path = tmp_path / fmt / REPORT
        report = ExportReport.read(path, strict=fmt == "stylegan")  # folder: no zip, no labels
        assert report.to_json() == json.loads(path.read_text()) == returned
        unset = [key for key, value in returned.items() if value is None]
        assert not unset, f"the stage no longer fills {unset}"
        assert (report.rows, report.parts, report.rows_exported_now) == (10, 3, 10)
        assert report.labels.classes == 2 and report.labels.rows_by_label == {"a": 5, "b": 5}
    assert report.zip is None and "zip" not in returned
    assert ExportReport.read(tmp_path / "stylegan" / REPORT).stylegan_labels == "class indices"
