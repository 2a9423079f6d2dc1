"""faces_report.json as a typed report: what the stage writes and the report page reads."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dcgan_data.core.report import StageReport
from dcgan_data.core.stage import Failures
from dcgan_data.faces.options import FaceOptions

# written only when set: a manifest without them is the same run as before they existed
OPTIONAL_PARAMS = ("url_col", "label_col")


@dataclass(kw_only=True)
class FacesParams(StageReport):
    """What the shards depend on, also the manifest's params: a re-run with other values is
    refused as a different run."""

    stage: str = "faces"
    crawl: str  # the list's file name
    lines_per_shard: int
    detector: str
    min_face: int
    min_score: float
    margin: float
    size: int
    url_col: str | None = None
    label_col: str | None = None

    @classmethod
    def of(cls, crawl: Path, options: FaceOptions) -> FacesParams:
        return cls(crawl=crawl.name, lines_per_shard=options.lines_per_shard,
                   detector=options.detector, min_face=options.min_face,
                   min_score=options.score_threshold(), margin=options.margin,
                   size=options.size, url_col=options.url_col, label_col=options.label_col)

    def to_json(self) -> dict[str, Any]:
        return {name: value for name, value in super().to_json().items()
                if value or name not in OPTIONAL_PARAMS}

    @classmethod
    def from_json(cls, data: dict[str, Any], strict: bool = False) -> FacesParams:
        unset = dict.fromkeys(OPTIONAL_PARAMS)  # absent means unset, even read strictly
        return super().from_json({**unset, **data}, strict=strict)


@dataclass(kw_only=True)
class FacesRunSettings(StageReport):
    """How this run fetched: settings that do not change the shards."""

    engine: str
    workers: int
    timeout: float
    retries: int
    max_bytes: int
    max_redirects: int
    respect_robots_headers: bool
    allow_private_addresses: bool
    local_root: str
    user_agent: str
    keep_originals: str | None
    max_list_bytes: int | None = None  # reports from before the option lack it

    @classmethod
    def of(cls, options: FaceOptions, engine: str) -> FacesRunSettings:
        fetch = options.fetch
        keep = options.keep_originals
        return cls(engine=engine, workers=options.workers, timeout=fetch.timeout,
                   retries=fetch.retries, max_bytes=fetch.max_bytes,
                   max_redirects=fetch.max_redirects,
                   respect_robots_headers=fetch.respect_robots,
                   allow_private_addresses=fetch.allow_private_addresses,
                   local_root=str(fetch.local_root or fetch.base_dir),
                   user_agent=fetch.user_agent, keep_originals=None if keep is None else str(keep),
                   max_list_bytes=options.max_list_bytes)


@dataclass(kw_only=True)
class FacesReport(StageReport):
    """faces_report.json. Counts are of list lines and entries (lines naming an image),
    images and face boxes, over every unit of the list (those resumed too)."""

    stage: str = "faces"
    params: FacesParams
    options: FacesRunSettings
    lines: int
    entries: int
    fetched: int
    decoded: int
    failed: int
    failed_by_reason: dict[str, int]
    failed_examples: dict[str, list[str]]
    images_with_face: int
    images_with_kept_face: int
    boxes: int
    kept: int
    shards: int
    units_run_now: int
    units_resumed: int
    thread_seconds_by_stage: dict[str, float]  # summed over the fetch threads and units
    wall_seconds_this_run: float
    entries_per_second: float | None  # None when every unit was resumed
    images_per_second: float | None
    status_table: str | None = None  # reports from before the status table lack it
    sheet: str | None  # faces.png, None when no face was kept


@dataclass
class ThisRun:
    """What the run itself did, beside the units' notes."""

    units_run: int
    entries: int  # listed in the units run now
    fetched: int
    wall_seconds: float
    engine: str


def faces_report(notes: list[dict[str, Any]], params: FacesParams, options: FaceOptions,
                 run: ThisRun, status_table: str, sheet: str | None) -> FacesReport:
    """The report of every unit's notes (in unit order) and of this run."""
    failed = Failures()
    seconds: Counter[str] = Counter()
    for n in notes:
        failed.merge({"failed_by_reason": n["failed"], "failed_examples": n["failed_examples"]})
        seconds.update(n["seconds"])
    total = {k: sum(n[k] for n in notes) for k in
             ("lines", "entries", "fetched", "decoded", "with_face", "with_kept_face", "boxes",
              "kept")}
    wall = run.wall_seconds
    return FacesReport(
        params=params, options=FacesRunSettings.of(options, run.engine),
        lines=total["lines"], entries=total["entries"], fetched=total["fetched"],
        decoded=total["decoded"], **failed.as_dict(),
        images_with_face=total["with_face"], images_with_kept_face=total["with_kept_face"],
        boxes=total["boxes"], kept=total["kept"], shards=len(notes),
        units_run_now=run.units_run, units_resumed=len(notes) - run.units_run,
        thread_seconds_by_stage={k: round(v, 2) for k, v in seconds.items()},
        wall_seconds_this_run=round(wall, 3),
        entries_per_second=round(run.entries / wall, 2) if run.units_run else None,
        images_per_second=round(run.fetched / wall, 2) if run.units_run else None,
        status_table=status_table, sheet=sheet)
