"""The dedup section of the report page."""

from __future__ import annotations

from dcgan_data.core import plots
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


def dedup_section(page: Page, stage: Stage, summary: Summary) -> Section:
    r = stage.report
    slug = anchor_slug(stage.folder, page.out)
    timings = r.get("timings_s") or {}
    section = Section(f"De-duplication ({stage.folder.name})", f"dedup-{slug}",
                      seconds=sum(timings.values()) if timings else None)
    images, removed = r.get("images") or 0, r.get("removed") or 0
    groups = r.get("largest_groups") or []
    section.headline = [
        ("images", fmt(images)),
        ("removed as duplicates", f"{fmt(removed)} ({percent(removed, images)})"),
        ("kept", fmt(r.get("kept"))),
        ("groups with duplicates", fmt(r.get("groups_with_duplicates"))),
        ("largest group", fmt(groups[0].get("size")) if groups else "-"),
        ("hashing speed", f"{fmt(r.get('hash_images_per_s'))} images/s"),
    ]
    fitted = (r.get("grouping") or {}).get("self_fit")
    if isinstance(fitted, dict):
        def share(key: str) -> str:
            value = fitted.get(key)
            return percent(value, 1) if isinstance(value, int | float) else "-"

        section.headline += [
            ("decided by", f"a model fitted on these images ({fmt(fitted.get('rows_sampled'))}"
                           " rows' synthetic copies and look-alikes)"),
            ("false pairs, the run's own estimate",
             f"{share('expected_false_share')} of the pairs it accepts (see docs/dedup.md "
             "for how far such estimates held on held-out sets)"),
            ("synthetic copies found (held back)", share("held_back_recall")),
            ("look-alike crops passed (held back)", share("held_back_look_alike_pass_rate")),
        ]
    if r.get("dry_run"):
        section.headline.insert(0, ("dry run", "nothing was removed from the shards"))
    sizes = {int(k): v for k, v in (r.get("group_size_histogram") or {}).items()}
    if sizes:
        section.figures.append(page.plot(
            f"dedup_{slug}_groups", "how many images share each hash", plots.histogram, sizes,
            title="Group sizes (1 = unique)", xlabel="images in the group",
            ylabel="groups", log=True, start=1))
    distances = {int(k): v for k, v in (r.get("distance_histogram") or {}).items()}
    if distances:
        section.figures.append(page.plot(
            f"dedup_{slug}_distances", "each removed image's distance to the one it copies",
            plots.histogram, distances, title="Hamming distance of the removed images",
            xlabel="bits that differ", ylabel="images removed", start=0))
    rates = (r.get("bits") or {}).get("bit_rates")
    if rates:
        section.figures.append(page.plot(f"dedup_{slug}_bits",
                                         "red: bits nearly always 0 or 1 (uninformative)",
                                         plots.bit_balance, rates))
    sheet = stage.folder / (r.get("files") or {}).get("sheet", "duplicates.png")
    if not removed:
        section.headline.insert(0, ("result", "no duplicates found"))
    elif sheet.exists():
        section.figures.append(page.picture(
            sheet, "removed duplicates (left) beside the image kept (right)", wide=True))
    if groups:
        section.collapsed.append(collapsed(
            f"Largest groups ({len(groups)})",
            table([(g.get("size"), g.get("first")) for g in groups], ["images", "first key"])))
    csv_path = stage.folder / (r.get("files") or {}).get("duplicates", "duplicates.csv")
    if csv_path.exists():
        section.links.append(page.link(csv_path, f"{csv_path.name} (every removed image and "
                                                  "the one it duplicates)"))
    summary.cards.append((fmt(removed), "removed as duplicates",
                          f"{percent(removed, images)} of {fmt(images)}"))
    return section
