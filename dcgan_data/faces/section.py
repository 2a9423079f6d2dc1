"""The faces section of the report page, read from the typed faces report."""

from __future__ import annotations

import csv
from pathlib import Path

from dcgan_data.core import plots
from dcgan_data.faces.report import FacesReport
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
    r = FacesReport.from_json(stage.report)
    params = r.params
    section = Section("Faces", "faces", seconds=r.wall_seconds_this_run)
    section.headline = [
        ("crawl list", f"{params.crawl}: {fmt(r.entries)} images listed"),
        ("fetched / decoded", f"{fmt(r.fetched)} / {fmt(r.decoded)}"),
        ("failed", f"{fmt(r.failed)}  {by_reason(r.failed_by_reason)}"),
        ("images with a face", f"{fmt(r.images_with_face)} "
                               f"({fmt(r.images_with_kept_face)} with one kept)"),
        ("faces found / kept", f"{fmt(r.boxes)} / {fmt(r.kept)}"),
        ("detector", f"{params.detector}, faces of at least {params.min_face} px"
                     f", score >= {params.min_score}"),
        ("speed", f"{fmt(r.images_per_second)} images/s"),
    ]
    section.figures += failure_plot(page, stage, r.failed_by_reason, "images")
    sizes = face_sizes(stage.folder / "faces.csv")
    if sizes:
        section.figures.append(page.plot(
            f"faces_{anchor_slug(stage.folder, page.out)}_sizes",
            "short side of every detected face",
            plots.value_histogram, sizes, title=f"Face sizes ({len(sizes):,} found)",
            xlabel="face size in the source image (px)",
            marks={f"kept from {params.min_face} px": params.min_face}))
    if r.sheet is not None and (stage.folder / r.sheet).exists():
        section.figures.append(page.picture(stage.folder / r.sheet, "the kept face crops",
                                            wide=True))
    if r.failed_examples:
        rows = [(reason, example) for reason, items in r.failed_examples.items()
                for example in items]
        section.collapsed.append(collapsed("Examples of each failure",
                                           table(rows, ["reason", "line and detail"])))
    section.links += status_link(page, stage.folder, r.status_table)
    for name, what in (("faces.csv", "every detection, kept or not"),
                       ("labels.csv", "the name of each kept face")):
        if (stage.folder / name).exists():
            section.links.append(page.link(stage.folder / name, f"{name} ({what})"))
    summary.cards.append((fmt(r.entries), "images listed",
                          f"{fmt(r.failed)} failed: {by_reason(r.failed_by_reason)}"
                          if r.failed_by_reason else "none failed"))
    summary.cards.append((fmt(r.kept), "faces kept",
                          f"of {fmt(r.boxes)} found in {fmt(r.decoded)} images"))
    return section
