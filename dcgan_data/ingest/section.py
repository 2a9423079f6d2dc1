"""The ingest section of the report page, read from the typed IngestReport."""

from __future__ import annotations

from dcgan_data.ingest.report import IngestReport
from dcgan_data.report.html import (
    TABLE_ROWS,
    Page,
    Section,
    Stage,
    Summary,
    by_reason,
    collapsed,
    failure_plot,
    fmt,
    status_link,
    table,
)


def ingest_section(page: Page, stage: Stage, summary: Summary) -> Section:
    r = IngestReport.from_json(stage.report)
    section = Section("Ingest", "ingest", seconds=r.seconds)
    section.headline = [
        ("source", f"{r.source_kind or ''} {r.source or ''}".strip()),
        ("images read", fmt(r.items_read)),
        ("written", fmt(r.written)),
        ("failed", f"{fmt(r.failed)}  {by_reason(r.failed_by_reason or {})}"),
        ("converted", by_reason(r.converted or {}) or "none"),
        ("size", f"{r.size} x {r.size} px, {fmt(r.shards)} shard(s)"),
        ("speed", f"{fmt(r.images_per_s)} images/s on {fmt(r.workers)} worker(s)"),
    ]
    section.figures += failure_plot(page, stage, r.failed_by_reason or {}, "images")
    if (stage.folder / "contact_sheet.png").exists():
        section.figures.append(page.picture(stage.folder / "contact_sheet.png",
                                            "a sample of the ingested crops"))
    failed = r.failed_items or []
    if failed:
        rows = [(f.key, f.reason, f.detail) for f in failed[:TABLE_ROWS]]
        more = f" (first {TABLE_ROWS})" if len(failed) > TABLE_ROWS else ""
        section.collapsed.append(collapsed(f"Failed keys: {len(failed):,}{more}",
                                           table(rows, ["key", "reason", "detail"])))
    section.links += status_link(page, stage.folder, r.status_table)
    summary.cards.append((fmt(r.items_read), "images in", f"{fmt(r.written)} written"))
    summary.cards.append((fmt(r.failed or 0), "failed in ingest",
                          by_reason(r.failed_by_reason or {}) or "none"))
    return section
