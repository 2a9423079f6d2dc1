"""The ingest section of the report page."""

from __future__ import annotations

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
    r = stage.report
    section = Section("Ingest", "ingest", seconds=r.get("seconds"))
    section.headline = [
        ("source", f"{r.get('source_kind', '')} {r.get('source', '')}".strip()),
        ("images read", fmt(r.get("read"))),
        ("written", fmt(r.get("written"))),
        ("failed", f"{fmt(r.get('failed'))}  {by_reason(r.get('failed_by_reason') or {})}"),
        ("converted", by_reason(r.get("converted") or {}) or "none"),
        ("size", f"{r.get('size')} x {r.get('size')} px, {fmt(r.get('shards'))} shard(s)"),
        ("speed", f"{fmt(r.get('images_per_s'))} images/s on {fmt(r.get('workers'))} "
                  "worker(s)"),
    ]
    section.figures += failure_plot(page, stage, r.get("failed_by_reason") or {}, "images")
    if (stage.folder / "contact_sheet.png").exists():
        section.figures.append(page.picture(stage.folder / "contact_sheet.png",
                                            "a sample of the ingested crops"))
    failed = r.get("failed_items") or []
    if failed:
        rows = [(f.get("key"), f.get("reason"), f.get("detail")) for f in failed[:TABLE_ROWS]]
        more = f" (first {TABLE_ROWS})" if len(failed) > TABLE_ROWS else ""
        section.collapsed.append(collapsed(f"Failed keys: {len(failed):,}{more}",
                                           table(rows, ["key", "reason", "detail"])))
    section.links += status_link(page, stage.folder, r.get("status_table"))
    summary.cards.append((fmt(r.get("read")), "images in", f"{fmt(r.get('written'))} written"))
    summary.cards.append((fmt(r.get("failed", 0)), "failed in ingest",
                          by_reason(r.get("failed_by_reason") or {}) or "none"))
    return section
