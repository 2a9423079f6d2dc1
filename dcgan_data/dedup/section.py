"""The dedup section of the report page."""

from __future__ import annotations

from dcgan_data.core import plots
from dcgan_data.dedup.report import DedupReport
from dcgan_data.report.html import (
    Page,
    Section,
    Stage,
    Summary,
    anchor_slug,
    collapsed,
    fmt,
    percent,
    table,
)


def _share(value: float | None) -> str:
    return percent(value, 1) if value is not None else "-"


def dedup_section(page: Page, stage: Stage, summary: Summary) -> Section:
    r = DedupReport.from_json(stage.report)
    slug = anchor_slug(stage.folder, page.out)
    section = Section(f"De-duplication ({stage.folder.name})", f"dedup-{slug}",
                      seconds=sum(r.timings_s.values()) if r.timings_s else None)
    groups = r.largest_groups
    section.headline = [
        ("images", fmt(r.images)),
        ("removed as duplicates", f"{fmt(r.removed)} ({percent(r.removed, r.images)})"),
        ("kept", fmt(r.kept)),
        ("groups with duplicates", fmt(r.groups_with_duplicates)),
        ("largest group", fmt(groups[0].size) if groups else "-"),
        ("hashing speed", f"{fmt(r.hash_images_per_s)} images/s"),
    ]
    fitted = r.grouping.self_fit
    if fitted is not None:
        section.headline += [
            ("decided by", f"a model fitted on these images ({fmt(fitted.rows_sampled)}"
                           " rows' synthetic copies and look-alikes)"),
            ("false pairs, the run's own estimate",
             f"{_share(fitted.expected_false_share)} of the pairs it accepts (see "
             "docs/dedup.md for how far such estimates held on held-out sets)"),
            ("synthetic copies found (held back)", _share(fitted.held_back_recall)),
            ("look-alike crops passed (held back)",
             _share(fitted.held_back_look_alike_pass_rate)),
        ]
    if r.dry_run:
        section.headline.insert(0, ("dry run", "nothing was removed from the shards"))
    _figures(page, section, r, slug)
    sheet = stage.folder / r.files.sheet
    if not r.removed:
        section.headline.insert(0, ("result", "no duplicates found"))
    elif sheet.exists():
        section.figures.append(page.picture(
            sheet, "removed duplicates (left) beside the image kept (right)", wide=True))
    if groups:
        section.collapsed.append(collapsed(
            f"Largest groups ({len(groups)})",
            table([(g.size, g.first) for g in groups], ["images", "first key"])))
    csv_path = stage.folder / r.files.duplicates
    if csv_path.exists():
        section.links.append(page.link(csv_path, f"{csv_path.name} (every removed image and "
                                                  "the one it duplicates)"))
    summary.cards.append((fmt(r.removed), "removed as duplicates",
                          f"{percent(r.removed, r.images)} of {fmt(r.images)}"))
    return section


def _figures(page: Page, section: Section, r: DedupReport, slug: str) -> None:
    """The group sizes, the removed images' hash distances and the bits' balance."""
    sizes = {int(k): v for k, v in r.group_size_histogram.items()}
    if sizes:
        section.figures.append(page.plot(
            f"dedup_{slug}_groups", "how many images share each hash", plots.histogram, sizes,
            title="Group sizes (1 = unique)", xlabel="images in the group",
            ylabel="groups", log=True, start=1))
    distances = {int(k): v for k, v in r.distance_histogram.items()}
    if distances:
        section.figures.append(page.plot(
            f"dedup_{slug}_distances", "each removed image's distance to the one it copies",
            plots.histogram, distances, title="Hamming distance of the removed images",
            xlabel="bits that differ", ylabel="images removed", start=0))
    if r.bits.bit_rates:
        section.figures.append(page.plot(f"dedup_{slug}_bits",
                                         "red: bits nearly always 0 or 1 (uninformative)",
                                         plots.bit_balance, r.bits.bit_rates))
