"""The faces section of the report page."""

from __future__ import annotations

import csv
from pathlib import Path

from dcgan_data.core import plots
from dcgan_data.report.html import (
    Page,
    Section,
    Stage,
    Summary,
    anchor_slug,
    by_reason,
    collapsed,
    failure_plot,
    fmt,
    status_link,
    table,
)


def face_sizes(path: Path) -> list[int]:
    """The short side of every detected box in faces.csv."""
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return [min(int(row["w"]), int(row["h"])) for row in csv.DictReader(f)]


def faces_section(page: Page, stage: Stage, summary: Summary) -> Section:
    r = stage.report
    params = r.get("params") or {}
    section = Section("Faces", "faces", seconds=r.get("wall_seconds_this_run"))
    section.headline = [
        ("crawl list", f"{params.get('crawl', '')}: {fmt(r.get('entries'))} images listed"),
        ("fetched / decoded", f"{fmt(r.get('fetched'))} / {fmt(r.get('decoded'))}"),
        ("failed", f"{fmt(r.get('failed'))}  {by_reason(r.get('failed_by_reason') or {})}"),
        ("images with a face", f"{fmt(r.get('images_with_face'))} "
                               f"({fmt(r.get('images_with_kept_face'))} with one kept)"),
        ("faces found / kept", f"{fmt(r.get('boxes'))} / {fmt(r.get('kept'))}"),
        ("detector", f"{params.get('detector')}, faces of at least {params.get('min_face')} px"
                     f", score >= {params.get('min_score')}"),
        ("speed", f"{fmt(r.get('images_per_second'))} images/s"),
    ]
    section.figures += failure_plot(page, stage, r.get("failed_by_reason") or {}, "images")
    sizes = face_sizes(stage.folder / "faces.csv")
    if sizes:
        marks = {f"kept from {params['min_face']} px": params["min_face"]} \
            if params.get("min_face") else None
        section.figures.append(page.plot(
            f"faces_{anchor_slug(stage.folder, page.out)}_sizes",
            "short side of every detected face",
            plots.value_histogram, sizes, title=f"Face sizes ({len(sizes):,} found)",
            xlabel="face size in the source image (px)", marks=marks))
    if (stage.folder / "faces.png").exists():
        section.figures.append(page.picture(stage.folder / "faces.png", "the kept face crops",
                                            wide=True))
    examples = r.get("failed_examples") or {}
    if examples:
        rows = [(reason, example) for reason, items in examples.items() for example in items]
        section.collapsed.append(collapsed("Examples of each failure",
                                           table(rows, ["reason", "line and detail"])))
    section.links += status_link(page, stage.folder, r.get("status_table"))
    for name, what in (("faces.csv", "every detection, kept or not"),
                       ("labels.csv", "the name of each kept face")):
        if (stage.folder / name).exists():
            section.links.append(page.link(stage.folder / name, f"{name} ({what})"))
    failed = r.get("failed_by_reason") or {}
    summary.cards.append((fmt(r.get("entries")), "images listed",
                          f"{fmt(r.get('failed'))} failed: {by_reason(failed)}" if failed
                          else "none failed"))
    summary.cards.append((fmt(r.get("kept")), "faces kept",
                          f"of {fmt(r.get('boxes'))} found in {fmt(r.get('decoded'))} images"))
    return section
