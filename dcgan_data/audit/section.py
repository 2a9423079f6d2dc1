"""The audit section of the report page."""

from __future__ import annotations

from dcgan_data.audit.report import AuditReport
from dcgan_data.report.html import (
    Page,
    Section,
    Stage,
    Summary,
    fmt,
    generic_section,
    percent,
    typed_headline,
)


def audit_section(page: Page, stage: Stage, summary: Summary) -> Section:
    section = generic_section(page, stage, summary, "Audit: did the generator copy its "
                                                    "training images?")
    report = AuditReport.from_json(stage.report)
    section.headline = typed_headline(report)
    if report.copies is not None:
        note = ("" if report.copy_fraction is None else
                f"{percent(report.copy_fraction, 1)} of {fmt(report.samples)} samples")
        summary.cards.append((fmt(report.copies), "samples that copy a training image", note))
    return section
