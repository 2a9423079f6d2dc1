"""What ingest reports: out/ingest_report.json (IngestReport) and the status table's rows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from dcgan_data.core.report import StageReport
from dcgan_data.core.shards import ShardSet, encode_key
from dcgan_data.core.stage import Failures

STATUS_COLUMNS = ["key", "status", "detail", "width", "height"]


@dataclass
class FailedItem(StageReport):
    key: str = ""
    reason: str = ""
    detail: str = ""


@dataclass
class ConvertedItem(StageReport):
    key: str = ""
    conversion: str = ""  # what decoding did to it (e.g. a palette or 16 bits made RGB)


@dataclass
class IngestReport(StageReport):
    """None: not in this report (one written by an older version, or damaged). The items
    read are `items_read`, written as the key "read" (the name of `StageReport.read`)."""

    stage: str = "ingest"
    source: str | None = None
    source_kind: str | None = None  # folder, lsun, webdataset, hf
    out: str | None = None
    size: int | None = None
    items_read: int | None = None
    written: int | None = None  # rows in the shards
    failed: int | None = None
    failed_by_reason: dict[str, int] = field(default_factory=dict)
    failed_examples: dict[str, list[str]] = field(default_factory=dict)
    failed_items: list[FailedItem] = field(default_factory=list)
    converted: dict[str, int] = field(default_factory=dict)  # items by conversion
    converted_items: list[ConvertedItem] = field(default_factory=list)
    shards: int | None = None
    shards_resumed: int | None = None
    seconds: float | None = None
    engine: str | None = None
    workers: int | None = None
    chunks_resumed: int | None = None
    images_per_s: float | None = None  # of the items decoded by this run
    label_classes: int | None = None  # class folders of an ImageFolder layout (labels.csv)
    status_table: str | None = None  # its file name in out

    def to_json(self) -> dict[str, Any]:
        return {("read" if k == "items_read" else k): v for k, v in super().to_json().items()}

    @classmethod
    def from_json(cls, data: dict[str, Any], strict: bool = False) -> IngestReport:
        return super().from_json({("items_read" if k == "read" else k): v
                                  for k, v in data.items()}, strict)


def shard_counts(notes: list[dict[str, Any]], report: IngestReport) -> IngestReport:
    """`report` with what the shards' notes say: items read, written, failed, converted."""
    failed = [FailedItem(f["key"], f["reason"], f["detail"]) for n in notes for f in n["failed"]]
    record = Failures()
    for f in failed:
        record.add(f.reason, f"{f.key} ({f.detail})")
    converted = [ConvertedItem(c["key"], c["conversion"]) for n in notes
                 for c in n["converted"]]
    failures = record.as_dict()
    report.items_read = sum(n["read"] for n in notes)
    report.written = report.items_read - len(failed)
    report.failed = failures["failed"]
    report.failed_by_reason = failures["failed_by_reason"]
    report.failed_examples = failures["failed_examples"]
    report.failed_items = failed
    report.converted = dict(Counter(c.conversion for c in converted))
    report.converted_items = converted
    return report


def status_rows(units: list[Sequence[str]], shards: ShardSet, notes: list[dict]
                ) -> Iterator[list[list]]:
    """Per unit, a STATUS_COLUMNS row for each of its keys in source order."""
    for index, items in enumerate(units):
        fates = {f["key"]: [encode_key(f["key"]), f["reason"], f["detail"], None, None]
                 for f in notes[index]["failed"]}
        hw = shards.shard_hw(index)
        for key, (height, width) in zip(shards.shard_keys(index), hw.tolist(), strict=True):
            fates[key] = [encode_key(key), "ok", None, width, height]
        yield [fates[key] for key in items]
