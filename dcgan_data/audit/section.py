"""The audit section of the report page."""

from __future__ import annotations

from dcgan_data.report.html import (
    Page,
    Section,
    Stage,
    Summary,
    fmt,
    generic_section,
    percent,
)


def audit_section(page: Page, stage: Stage, summary: Summary) -> Section:
    section = generic_section(page, stage, summary, "Audit: did the generator copy its "
                                                    "training images?")
    r = stage.report
    copies, fraction = r.get("copies"), r.get("copy_fraction")
    samples = r.get("samples", r.get("generated"))
    if copies is not None or fraction is not None:
        note = f"{percent(fraction, 1)} of {fmt(samples)} samples" if isinstance(
            fraction, int | float) else ""
        summary.cards.append((fmt(copies if copies is not None else fraction),
                              "samples that copy a training image", note))
    return section
