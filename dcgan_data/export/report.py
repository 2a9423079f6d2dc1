"""What export reports: DEST/export_report.json (ExportReport)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dcgan_data.core.report import StageReport


@dataclass
class ExportLabels(StageReport):
    classes: int | None = None
    rows_by_label: dict[str, int] = field(default_factory=dict)  # "" for rows without one
    rows_without_label: int | None = None


@dataclass
class ExportReport(StageReport):
    """None: not in this report (one written by an older version, or damaged). `zip` and
    `stylegan_labels` are written for a stylegan export only."""

    stage: str = "export"
    format: str | None = None
    source: str | None = None
    out: str | None = None
    rows: int | None = None
    shape: list[int] = field(default_factory=list)
    parts: int | None = None
    parts_resumed: int | None = None
    rows_exported_now: int | None = None
    bytes_written: int | None = None  # by every part, this run's and earlier ones'
    labels: ExportLabels | None = None  # None: the shards have no labels.csv
    seconds: float | None = None
    threads: int | None = None
    images_per_s: float | None = None  # of this run's rows; None when it exported none
    mb_per_s: float | None = None
    zip: str | None = None
    stylegan_labels: str | None = None  # "class indices", or why there are none

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        if self.format != "stylegan":
            del data["zip"], data["stylegan_labels"]
        return data
