"""One dashboard page per pipeline run: a summary first, then one section per stage.

Each stage's section shows its headline figures, its pictures and plots drawn from its report
(matplotlib PNGs written to a folder beside the page, `<page>_files/`). Parameters and the raw
JSON stay available in collapsed parts. Stages the page does not know (a new stage's
`*_report.json`) still get a section with their scalar figures and pictures.

Everything is linked by relative path, so the page opens offline from the run's folder, or a
copy of it, in any browser; a small script marks any picture that failed to load.
"""

from __future__ import annotations

import csv
import html
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from dcgan_data import plots, status
from dcgan_data.errors import DcganDataError, InputError
from dcgan_data.files import atomic_write_text, write_json

TABLE_ROWS = 200  # rows of a collapsed item table (failed keys...); the status table has all
SAMPLE_GRIDS = 4  # training sample grids shown side by side, first to last
SHOT_WIDTH = 1280  # px: the width of the checked page and its screenshot
RAW_JSON_MAX = 200_000  # characters of a report shown inline; larger ones are only linked
# metrics.jsonl columns with a plot of their own; any other numeric column is plotted too
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
SKIP_DIRS = {"samples", "checkpoints", status.PARTS}
PLOT_LIST = "plots.json"  # in <page>_files/: the plots the last report drew there


# ---------------------------------------------------------------------------- formatting


def fmt(value: Any) -> str:
    """A figure as a person reads it: 12,345 / 0.1235 / 12.3%; never a dict or a list."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    if value is None:
        return "-"
    if isinstance(value, dict | list):
        return f"{len(value)} item(s), see the JSON"
    return str(value)


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def percent(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def esc(text: Any) -> str:
    return html.escape(str(text))


def by_reason(counts: dict[str, int]) -> str:
    return ", ".join(f"{reason} {n:,}" for reason, n in
                     sorted(counts.items(), key=lambda kv: -kv[1]))


# ---------------------------------------------------------------------------- the stages


@dataclass
class Stage:
    kind: str  # ingest, dedup, faces, train, audit, or the report's own name
    folder: Path
    report: dict[str, Any]
    report_path: Path | None
    written: float  # mtime: stages are shown in the order the pipeline ran them
    problems: list[str] = field(default_factory=list)  # what of the report could not be read


def find_stages(out: Path, skip: Path | None = None) -> list[Stage]:
    """Every stage report (`*_report.json`) and training run (`metrics.jsonl`) under OUT."""
    stages = []
    for folder in [out, *sorted(p for p in out.rglob("*") if p.is_dir())]:
        if folder.name in SKIP_DIRS or folder == skip:
            continue
        for path in sorted(folder.glob("*_report.json")):
            problems = []
            try:
                report = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                report, problems = {}, [f"unreadable ({exc})"]
            if not isinstance(report, dict):
                report, problems = {}, [f"not a JSON object (a {type(report).__name__})"]
            kind = report.get("stage") if isinstance(report.get("stage"), str) else None
            kind = kind or path.name.removesuffix("_report.json")
            readable, odd = readable_fields(kind, report)
            stages.append(Stage(kind, folder, readable, path, path.stat().st_mtime,
                                problems + odd))
        metrics = folder / "metrics.jsonl"
        if metrics.exists() and not (folder / "train_report.json").exists():
            stages.append(Stage("train", folder, {}, None, metrics.stat().st_mtime))
    return sorted(stages, key=lambda s: s.written)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _integer_text(key: Any) -> bool:
    return isinstance(key, str) and key.lstrip("-").isdigit()


# What each kind of field read by a section must be; None passes everywhere (not measured).
KINDS: dict[str, Callable[[Any], bool]] = {
    "a number": _number,
    "text": lambda v: isinstance(v, str),
    "a mapping": lambda v: isinstance(v, dict),
    "counts": lambda v: isinstance(v, dict) and all(map(_number, v.values())),
    "a histogram": lambda v: isinstance(v, dict) and all(
        _integer_text(k) and _number(n) for k, n in v.items()),
    "a list of records": lambda v: isinstance(v, list) and all(isinstance(x, dict) for x in v),
}
_COUNT_FIELDS = ("read", "written", "failed", "shards", "workers", "images", "removed", "kept",
                 "groups_with_duplicates", "removed_by_probes", "entries", "fetched", "decoded",
                 "images_with_face", "images_with_kept_face", "boxes", "step", "total_steps",
                 "copies", "copy_fraction", "samples", "generated")
_RATE_FIELDS = ("seconds", "images_per_s", "hash_images_per_s", "images_per_second",
                "wall_seconds_this_run")
FIELDS: dict[str, str] = {
    **dict.fromkeys(_COUNT_FIELDS + _RATE_FIELDS, "a number"),
    **dict.fromkeys(("source", "source_kind", "status_table"), "text"),
    **dict.fromkeys(("failed_by_reason", "converted", "timings_s"), "counts"),
    **dict.fromkeys(("group_size_histogram", "distance_histogram"), "a histogram"),
    **dict.fromkeys(("failed_items", "largest_groups"), "a list of records"),
    **dict.fromkeys(("bits", "files", "params", "failed_examples"), "a mapping"),
}


def readable_fields(kind: str, report: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The report without the fields a known stage's section would misread (a string where
    counts were, a list where a mapping was), and a line for each field left out."""
    if kind not in SECTIONS:
        return report, []  # the generic section reads nothing by name
    readable, odd = {}, []
    for name, value in report.items():
        expected = FIELDS.get(name)
        if expected is None or value is None or KINDS[expected](value):
            readable[name] = value
        else:
            odd.append(f"{name}: {expected} expected, {type(value).__name__} found")
    return readable, odd


def read_metrics(path: Path) -> list[dict[str, Any]]:
    records = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut by a killed run
            if isinstance(record, dict) and isinstance(record.get("step"), int | float):
                records.append(record)
    return records


def numeric_columns(records: list[dict[str, Any]]) -> list[str]:
    """Columns holding numbers in metrics.jsonl, in first-seen order."""
    columns: dict[str, None] = {}
    for record in records:
        for key, value in record.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                columns.setdefault(key, None)
    return list(columns)


# ---------------------------------------------------------------------------- the page


@dataclass
class Section:
    title: str
    anchor: str
    headline: list[tuple[str, str]] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)  # <figure> html, in a flowing row
    collapsed: list[str] = field(default_factory=list)  # <details> html
    links: list[str] = field(default_factory=list)
    seconds: float | None = None


@dataclass
class Summary:
    cards: list[tuple[str, str, str]] = field(default_factory=list)  # value, label, note
    times: list[tuple[str, float | None]] = field(default_factory=list)


class Page:
    """Paths and pictures of one page: links are relative to the page's folder, plots go to
    `<page>_files/`."""

    def __init__(self, out: Path, page: Path):
        self.out = out
        self.page_dir = page.parent.resolve()
        self.assets = page.parent / f"{page.stem}_files"
        self.used: set[Path] = set()
        self.drawn: set[str] = set()  # file names of the plots drawn into `assets`

    def href(self, path: Path) -> str:
        return quote(Path(os.path.relpath(path.resolve(), self.page_dir)).as_posix())

    def link(self, path: Path, text: str | None = None) -> str:
        return f'<a href="{self.href(path)}">{esc(text or path.name)}</a>'

    def picture(self, path: Path, caption: str, wide: bool = False) -> str:
        self.used.add(path.resolve())
        cls = ' class="wide"' if wide else ""
        return (f'<figure{cls}><a href="{self.href(path)}"><img src="{self.href(path)}" '
                f'alt="{esc(caption)}"></a><figcaption>{esc(caption)}</figcaption></figure>')

    def plot(self, name: str, caption: str, draw: Callable[..., None], *args: Any,
             **kwargs: Any) -> str:
        path = self.assets / f"{name}.png"
        draw(*args, path, **kwargs)
        self.drawn.add(path.name)
        return self.picture(path, caption)

    def remove_stale_plots(self) -> None:
        """Delete the plots an earlier report drew into `assets` and this one did not (of
        stages no longer there), and nothing else: a file the user put there stays. The
        list of plots drawn is kept in `assets` for the next report."""
        record = self.assets / PLOT_LIST
        try:
            earlier = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            earlier = []
        for name in set(earlier if isinstance(earlier, list) else []) - self.drawn:
            if isinstance(name, str) and name.endswith(".png") and Path(name).name == name:
                (self.assets / name).unlink(missing_ok=True)
        if self.drawn or record.exists():
            write_json(record, sorted(self.drawn))

    def leftovers(self, folder: Path) -> list[str]:
        """Pictures of a stage folder that no section showed yet."""
        return [self.picture(p, p.name) for p in sorted(folder.glob("*.png"))
                if p.resolve() not in self.used]


def table(rows: Iterable[Iterable[Any]], header: Iterable[str] | None = None) -> str:
    head = ("<thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr></thead>"
            if header else "")
    body = "".join("<tr>" + "".join(f"<td>{esc(fmt(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table>{head}<tbody>{body}</tbody></table>"


def collapsed(title: str, inner: str) -> str:
    return f"<details><summary>{esc(title)}</summary>{inner}</details>"


def raw_json(page: Page, stage: Stage) -> str:
    """The stage's whole report, collapsed: a link to the file and (if small) its text."""
    if stage.report_path is None:
        return ""
    text = stage.report_path.read_text(encoding="utf-8", errors="replace")
    shown = f"<pre>{esc(text)}</pre>" if len(text) <= RAW_JSON_MAX else ""
    return collapsed(f"Parameters and all figures ({stage.report_path.name})",
                     f"<p>{page.link(stage.report_path)}</p>{shown}")


def status_link(page: Page, folder: Path, name: str | None) -> list[str]:
    path = folder / name if name else None
    if path is None or not path.exists():
        return []
    return [page.link(path, f"{name} (one row per item: its status and reason)")]


def failure_plot(page: Page, stage: Stage, counts: dict[str, int], what: str) -> list[str]:
    if not counts:
        return []
    return [page.plot(f"{stage.kind}_{_slug(stage.folder, page.out)}_failures",
                      f"{what} that failed, by reason", plots.bar_counts, counts,
                      title=f"Failed {what}: {sum(counts.values()):,}", xlabel=what)]


def _slug(folder: Path, out: Path) -> str:
    rel = folder.relative_to(out).as_posix() if folder != out else "top"
    return re.sub(r"[^A-Za-z0-9]+", "_", rel).strip("_") or "top"


# ---------------------------------------------------------------------------- sections


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


def dedup_section(page: Page, stage: Stage, summary: Summary) -> Section:
    r = stage.report
    slug = _slug(stage.folder, page.out)
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
            f"faces_{_slug(stage.folder, page.out)}_sizes", "short side of every detected face",
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
    r, folder = stage.report, stage.folder
    slug = _slug(folder, page.out)
    records = read_metrics(folder / "metrics.jsonl")
    config = _read_json(folder / "config.json")
    section = Section(f"Training ({folder.relative_to(page.out).as_posix() or folder.name})",
                      f"train-{slug}", seconds=_train_seconds(folder))
    step = r.get("step", records[-1]["step"] if records else 0)
    total = r.get("total_steps", config.get("total_steps"))
    last = records[-1] if records else {}
    speeds = sorted(m["images_per_s"] for m in records if "images_per_s" in m)
    section.headline = [
        ("steps", f"{fmt(step)} of {fmt(total)}"
                  + (" (interrupted)" if r.get("interrupted") else "")),
        ("data", f"{fmt(config.get('data_rows'))} images, batch {fmt(config.get('batch_size'))}"
                 f", on {config.get('device', '-')}"),
        ("last losses", f"D {fmt(last.get('loss_D'))}, G {fmt(last.get('loss_G'))}"),
        ("last D(x) / D(G(z))", f"{fmt(last.get('D_x'))} / {fmt(last.get('D_G_z'))}"),
        ("speed", f"{fmt(speeds[len(speeds) // 2])} images/s (median)" if speeds else "-"),
    ]
    extra = [c for c in numeric_columns(records) if c not in TRAIN_COLUMNS]
    for column in extra:
        values = [m[column] for m in records if isinstance(m.get(column), int | float)]
        if values:
            section.headline.append((column, f"{_trend(values)}{GOOD.get(column, '')}"))
    steps = [m["step"] for m in records]
    column = lambda name: [m.get(name, math.nan) for m in records]  # noqa: E731
    if records:
        section.figures.append(page.plot(
            f"train_{slug}_losses", "discriminator and generator losses", plots.curves, steps,
            {"loss_D": column("loss_D"), "loss_G": column("loss_G")}, title="Losses",
            ylabel="BCE loss"))
        if "D_x" in records[-1]:
            section.figures.append(page.plot(
                f"train_{slug}_dx", "D's mean output on real and generated images",
                plots.curves, steps, {"D(x)": column("D_x"), "D(G(z))": column("D_G_z")},
                title="Discriminator outputs", ylabel="mean D output", hline=0.5))
    for name in extra:
        if sum(isinstance(m.get(name), int | float) for m in records) < 2:
            continue  # one dot is no curve; the headline gives the figure
        section.figures.append(page.plot(
            f"train_{slug}_{re.sub(r'[^A-Za-z0-9]+', '_', name)}", f"{name} against step",
            plots.curves, steps, {name: column(name)}, title=name, ylabel=name))
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
        values = [m[name] for m in records if isinstance(m.get(name), int | float)]
        summary.cards.append((fmt(values[-1]), name,
                              f"{_trend(values, card=True)}{GOOD.get(name, '')}"))
    return section


def _trend(values: list[float], card: bool = False) -> str:
    """How a quality figure went, and (GOOD) what a good value is."""
    if len(values) == 1:
        return f"{'' if card else fmt(values[0]) + ' '}at the only evaluation (no trend yet)"
    if card:
        return f"from {fmt(values[0])} at the first evaluation"
    return f"{fmt(values[0])} at first, {fmt(values[-1])} at last"


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


def generic_section(page: Page, stage: Stage, summary: Summary, title: str | None = None
                    ) -> Section:
    """Any other stage: its scalar figures, its pictures, its JSON collapsed."""
    r = stage.report
    section = Section(title or stage.kind.replace("_", " ").capitalize(),
                      f"{stage.kind}-{_slug(stage.folder, page.out)}", seconds=_seconds(r))
    section.headline = [(k.replace("_", " "), fmt(v)) for k, v in r.items()
                        if k != "stage" and not isinstance(v, dict | list)]
    return section


def draw_section(page: Page, stage: Stage, summary: Summary) -> Section:
    """The stage's own section, or where its report holds something it cannot draw, the
    generic one: every scalar figure that could be read, and what could not."""
    try:
        return SECTIONS.get(stage.kind, generic_section)(page, stage, summary)
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
        stage.problems.append(f"the {stage.kind} section could not be drawn "
                              f"({type(exc).__name__}: {exc})")
        return generic_section(page, stage, summary)


def _seconds(report: dict[str, Any]) -> float | None:
    for key in ("seconds", "wall_seconds", "wall_seconds_this_run"):
        if isinstance(report.get(key), int | float):
            return float(report[key])
    for key in ("timings_s", "timings", "seconds_by_stage"):
        if isinstance(report.get(key), dict):
            return float(sum(v for v in report[key].values() if isinstance(v, int | float)))
    return None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


SECTIONS = {"ingest": ingest_section, "dedup": dedup_section, "faces": faces_section,
            "train": train_section, "audit": audit_section}


# ---------------------------------------------------------------------------- html


def render_section(page: Page, stage: Stage, section: Section) -> str:
    figures = section.figures + page.leftovers(stage.folder)
    links = " &middot; ".join(section.links)
    where = stage.folder.relative_to(page.out).as_posix() if stage.folder != page.out else "."
    return "\n".join([
        f'<section id="{esc(section.anchor)}"><h2>{esc(section.title)} '
        f'<small>{esc(where)}/ &middot; {fmt_seconds(section.seconds)}</small></h2>',
        table(section.headline) if section.headline else "",
        (f'<p class="bad">Not read from {esc(stage.report_path.name)}: '
         f"{esc('; '.join(stage.problems))}</p>" if stage.problems and stage.report_path
         else ""),
        f'<div class="figures">{"".join(figures)}</div>' if figures else "",
        f'<p class="links">Files: {links}</p>' if links else "",
        *section.collapsed,
        raw_json(page, stage),
        "</section>",
    ])


def render_summary(summary: Summary, sections: list[Section]) -> str:
    cards = "".join(f'<div class="card"><b>{esc(value)}</b><span>{esc(label)}</span>'
                    f"<small>{esc(note)}</small></div>" for value, label, note in summary.cards)
    times = " &middot; ".join(f'<a href="#{esc(s.anchor)}">{esc(s.title)}</a> '
                              f"{fmt_seconds(s.seconds)}" for s in sections)
    return (f'<section class="summary"><div class="cards">{cards}</div>'
            f'<p class="times">Time per stage: {times}</p></section>')


# Counts the page's pictures as they load (marking any that fails), looks for raw dict text
# ({ or [ then a quoted key) outside the collapsed parts, and leaves the results in <body
# data-...> for tools that check the page.
_SCRIPT = r"""
<script>
window.addEventListener("load", () => {
  const imgs = [...document.images];
  const broken = imgs.filter(i => !(i.complete && i.naturalWidth > 0));
  broken.forEach(i => i.insertAdjacentHTML("afterend",
    "<p class=bad>missing picture: " + i.getAttribute("src") + "</p>"));
  const visible = document.body.cloneNode(true);
  visible.querySelectorAll("details, script").forEach(e => e.remove());
  const raw = visible.textContent.match(/[{\[]\s*["'][^"'\n]{0,80}["']\s*:/g) || [];
  const b = document.body.dataset;
  b.imagesOk = imgs.length - broken.length;
  b.imagesBroken = broken.length;
  b.rawDicts = raw.length;
  b.height = Math.ceil(document.documentElement.scrollHeight);
});
</script>
"""

_STYLE = """
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em 2em; color: #222;
       max-width: 1400px; }
h1 { font-size: 1.6em; margin: 0 0 .5em; }
h2 { font-size: 1.25em; margin: 0 0 .4em; }
h2 small { font-weight: normal; color: #777; font-size: .7em; margin-left: .6em; }
h3 { font-size: 1em; margin: .3em 0; }
section { border-top: 1px solid #ddd; padding-top: 1em; margin-top: 1.5em; }
.summary { border: 0; margin-top: 0; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 8px 14px; min-width: 9em;
        max-width: 22em; background: #fafafa; }
.card b { display: block; font-size: 1.8em; line-height: 1.2; }
.card span { display: block; font-weight: 600; }
.card small { color: #666; }
.times { color: #444; }
table { border-collapse: collapse; margin: .4em 0 .8em; }
th, td { text-align: left; vertical-align: top; padding: 2px 14px 2px 0; }
tbody tr > td:first-child { color: #555; white-space: nowrap; }
thead th { border-bottom: 1px solid #ccc; }
td { max-width: 70em; overflow-wrap: anywhere; }
.figures { display: flex; flex-wrap: wrap; gap: 14px; align-items: flex-start; }
figure { margin: 0; max-width: 600px; }
figure.wide { max-width: 100%; }
.grids { flex-basis: 100%; }
.grids figure { display: inline-block; width: 23%; margin-right: 1%; vertical-align: top; }
img { max-width: 100%; border: 1px solid #e3e3e3; }
.grids img, figure.wide img { image-rendering: pixelated; }
figcaption { color: #666; font-size: .9em; }
details { margin: .3em 0; }
summary { cursor: pointer; color: #1f5fa8; }
pre { background: #f6f6f6; padding: .6em; max-height: 30em; overflow: auto; font-size: 12px; }
.bad { color: #b00; font-weight: bold; }
</style>
"""


def build_report(out: str | os.PathLike, page_path: str | os.PathLike | None = None) -> str:
    """The HTML page for pipeline output folder `out`, to be saved as `page_path` (default
    OUT/report.html); its plots are written to `<page>_files/` beside it."""
    out = Path(out)
    if not out.is_dir():
        raise InputError(f"{out}: no such output folder")
    page = Page(out, Path(page_path) if page_path else out / "report.html")
    stages = find_stages(out, skip=page.assets)
    if not stages:
        raise InputError(f"{out}: no stage reports (*_report.json) or training runs found")
    summary = Summary()
    sections, parts = [], []
    for stage in stages:
        section = draw_section(page, stage, summary)
        sections.append(section)
        parts.append(render_section(page, stage, section))
    page.remove_stale_plots()
    title = esc(f"dcgan-data: {out.resolve().name}")
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{title}</title>"
            f"{_STYLE}</head><body><h1>{title}</h1>\n{render_summary(summary, sections)}\n"
            + "\n".join(parts) + _SCRIPT + "</body></html>\n")


def write_report(out: str | os.PathLike, path: str | os.PathLike | None = None) -> Path:
    """Write the page to `path` (default OUT/report.html) atomically, its plots beside it."""
    target = Path(path) if path else Path(out) / "report.html"
    atomic_write_text(target, build_report(out, target))
    return target


# ---------------------------------------------------------------------------- checking


@dataclass
class PageCheck:
    images_ok: int
    images_broken: int
    raw_dicts: int  # places outside collapsed parts where a dict or list is printed raw
    height: int


def _chromium(page: Path, *args: str) -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        raise DcganDataError("chromium is not installed (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=5000",
             *args, page.resolve().as_uri()],
            capture_output=True, text=True, timeout=120, check=True,
        ).stdout


def browser_check(page: str | os.PathLike, screenshot: str | os.PathLike | None = None
                  ) -> PageCheck:
    """Open `page` in headless Chromium: how many pictures loaded and failed, and how often
    raw dict text shows outside collapsed parts; with `screenshot`, save the whole page."""
    page = Path(page)
    dom = _chromium(page, "--dump-dom", f"--window-size={SHOT_WIDTH},800")
    found = re.search(r'<body data-images-ok="(\d+)" data-images-broken="(\d+)" '
                      r'data-raw-dicts="(\d+)" data-height="(\d+)"', dom)
    if found is None:
        raise DcganDataError(f"{page}: the page's script did not run in chromium")
    check = PageCheck(*(int(g) for g in found.groups()))
    if screenshot is not None:
        shot = Path(screenshot).resolve()
        shot.parent.mkdir(parents=True, exist_ok=True)
        height = min(max(check.height, 600), 16000)
        _chromium(page, f"--screenshot={shot}", f"--window-size={SHOT_WIDTH},{height}",
                  "--hide-scrollbars")
        if not shot.exists():
            raise DcganDataError(f"chromium wrote no screenshot of {page}")
    return check
