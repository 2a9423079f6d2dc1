"""The train section of the report page."""

from __future__ import annotations

import math
import re
from pathlib import Path

from dcgan_data.core import plots
from dcgan_data.report.html import (
    Page,
    Section,
    Stage,
    Summary,
    anchor_slug,
    fmt,
    numeric_columns,
    read_json_object,
    read_metrics,
)
from dcgan_data.train.report import MetricsRecord, RunConfig, TrainReport

SAMPLE_GRIDS = 4  # training sample grids shown side by side, first to last

# known metrics.jsonl columns drawn in their own plots (or settings, as eval_images: how many
# generated images an evaluation used); any other numeric column gets a plot of its own
TRAIN_COLUMNS = {"step", "loss_D", "loss_G", "D_x", "D_G_z", "images_per_s", "eval_images"}

# what good looks like, for the quality figures a run logs
GOOD = {
    "hash_fd": "; lower is better: 0 for the training images themselves; a learning run "
               "falls step by step (compare runs on the same data, not with published FIDs)",
    "hash_kid": "; lower is better: near 0 for the training images themselves",
    "fid": "; lower is better: 0 for the training images themselves",
    "kid": "; lower is better: near 0 for the training images themselves",
}


def _train_seconds(folder: Path) -> float | None:
    # config.json is written when a run (or its resumption) starts, the report when it ends
    start, end = folder / "config.json", folder / "train_report.json"
    if start.exists() and end.exists():
        return max(0.0, end.stat().st_mtime - start.stat().st_mtime)
    return None


def sample_grids(folder: Path, n: int = SAMPLE_GRIDS) -> list[Path]:
    """Up to n sample grids spread from the first to the last."""
    grids = sorted((folder / "samples").glob("step_*.png"))
    if len(grids) <= n:
        return grids
    picks = sorted({round(i * (len(grids) - 1) / (n - 1)) for i in range(n)})
    return [grids[i] for i in picks]


def train_section(page: Page, stage: Stage, summary: Summary) -> Section:
    folder = stage.folder
    report = TrainReport.from_json(stage.report)  # all defaults while a run still trains
    config = RunConfig.from_json(read_json_object(folder / "config.json"))
    slug = anchor_slug(folder, page.out)
    records = [MetricsRecord.from_json(m) for m in read_metrics(folder / "metrics.jsonl")]
    section = Section(f"Training ({folder.relative_to(page.out).as_posix() or folder.name})",
                      f"train-{slug}", seconds=_train_seconds(folder))
    step = report.step if report.step is not None else records[-1].step if records else 0
    total = report.total_steps if report.total_steps is not None else config.total_steps
    batch = config.settings.batch_size if config.settings is not None else None
    last = records[-1] if records else None
    speeds = sorted(m.images_per_s for m in records if m.images_per_s is not None)
    section.headline = [
        ("steps", f"{fmt(step)} of {fmt(total)}" + (" (interrupted)" if report.interrupted
                                                     else "")),
        ("data", f"{fmt(config.data_rows)} images, batch {fmt(batch)}, on "
                 f"{config.device or '-'}"),
        ("last losses", f"D {fmt(last and last.loss_D)}, G {fmt(last and last.loss_G)}"),
        ("last D(x) / D(G(z))", f"{fmt(last and last.D_x)} / {fmt(last and last.D_G_z)}"),
        ("speed", f"{fmt(speeds[len(speeds) // 2])} images/s (median)" if speeds else "-"),
    ]
    extra = [c for c in numeric_columns([m.quality for m in records]) if c not in TRAIN_COLUMNS]
    for name in extra:
        values = quality_values(records, name)
        if values:
            section.headline.append((name, f"{_trend(values)}{GOOD.get(name, '')}"))
    steps = [m.step for m in records]
    column = lambda name: [_number(getattr(m, name)) for m in records]  # noqa: E731
    quality = lambda name: [_number(m.quality.get(name)) for m in records]  # noqa: E731
    if records:
        section.figures.append(page.plot(
            f"train_{slug}_losses", "discriminator and generator losses", plots.curves, steps,
            {"loss_D": column("loss_D"), "loss_G": column("loss_G")}, title="Losses",
            ylabel="BCE loss"))
        if records[-1].D_x is not None:
            section.figures.append(page.plot(
                f"train_{slug}_dx", "D's mean output on real and generated images",
                plots.curves, steps, {"D(x)": column("D_x"), "D(G(z))": column("D_G_z")},
                title="Discriminator outputs", ylabel="mean D output", hline=0.5))
    for name in extra:
        if len(quality_values(records, name)) < 2:
            continue  # one dot is no curve; the headline gives the figure
        section.figures.append(page.plot(
            f"train_{slug}_{re.sub(r'[^A-Za-z0-9]+', '_', name)}", f"{name} against step",
            plots.curves, steps, {name: quality(name)}, title=name, ylabel=name))
    grids = sample_grids(folder)
    if grids:
        row = "".join(page.picture(g, f"step {int(g.stem.split('_')[-1]):,}") for g in grids)
        section.figures.append(f'<div class="grids"><h3>Samples from one fixed z, as training '
                               f"went on</h3>{row}</div>")
    final = page.out / "samples.png"
    if final.exists() and final.resolve() not in page.used:
        section.figures.append(page.picture(final, "samples.png: 64 images from the trained "
                                                   "generator", wide=True))
    page.used.add((folder / "loss.png").resolve())  # drawn above from the same metrics
    for path, what in ((folder / "loss.png", "loss.png"), (folder / "metrics.jsonl",
                       "metrics.jsonl (every logged step)"), (folder / "config.json",
                       "config.json (the run's settings)")):
        if path.exists():
            section.links.append(page.link(path, what))
    summary.cards.append((fmt(step), "steps trained", f"of {fmt(total)}"))
    for name in extra[:1]:  # the quality figure (FID or a stand-in), whatever its name
        values = quality_values(records, name)
        summary.cards.append((fmt(values[-1]), name,
                              f"{_trend(values, card=True)}{GOOD.get(name, '')}"))
    return section


def quality_values(records: list[MetricsRecord], name: str) -> list[float]:
    """The logged values of quality figure `name`, in step order."""
    return [m.quality[name] for m in records if isinstance(m.quality.get(name), int | float)]


def _number(value: float | None) -> float:
    return math.nan if value is None else value


def _trend(values: list[float], card: bool = False) -> str:
    """How a quality figure went, and (GOOD) what a good value is."""
    if len(values) == 1:
        return f"{'' if card else fmt(values[0]) + ' '}at the only evaluation (no trend yet)"
    if card:
        return f"from {fmt(values[0])} at the first evaluation"
    return f"{fmt(values[0])} at first, {fmt(values[-1])} at last"
