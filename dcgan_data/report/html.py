"""The pieces every section of the report page is built from: formatting, the page's
plots and pictures, tables, and the generic section of a stage the page does not know."""

from __future__ import annotations

import dataclasses
import html
import json
import math
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from dcgan_data.core import plots
from dcgan_data.core.files import write_json
from dcgan_data.core.report import StageReport

TABLE_ROWS = 200  # rows of a collapsed item table (failed keys...); the status table has all


RAW_JSON_MAX = 200_000  # characters of a report shown inline; larger ones are only linked


PLOT_LIST = "plots.json"  # in <page>_files/: the plots the last report drew there


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


@dataclass
class Stage:
    kind: str  # ingest, dedup, faces, train, audit, or the report's own name
    folder: Path
    report: dict[str, Any]
    report_path: Path | None
    written: float  # mtime: stages are shown in the order the pipeline ran them
    problems: list[str] = field(default_factory=list)  # what of the report could not be read


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
    return [page.plot(f"{stage.kind}_{anchor_slug(stage.folder, page.out)}_failures",
                      f"{what} that failed, by reason", plots.bar_counts, counts,
                      title=f"Failed {what}: {sum(counts.values()):,}", xlabel=what)]


def anchor_slug(folder: Path, out: Path) -> str:
    rel = folder.relative_to(out).as_posix() if folder != out else "top"
    return re.sub(r"[^A-Za-z0-9]+", "_", rel).strip("_") or "top"


def generic_section(page: Page, stage: Stage, summary: Summary, title: str | None = None
                    ) -> Section:
    """Any other stage: its scalar figures, its pictures, its JSON collapsed."""
    r = stage.report
    section = Section(title or stage.kind.replace("_", " ").capitalize(),
                      f"{stage.kind}-{anchor_slug(stage.folder, page.out)}",
                      seconds=report_seconds(r))
    section.headline = [(k.replace("_", " "), fmt(v)) for k, v in r.items()
                        if k != "stage" and not isinstance(v, dict | list)]
    return section


def typed_headline(report: StageReport) -> list[tuple[str, str]]:
    """Every scalar attribute of a typed stage report, in field order (None shown as "-")."""
    values = [(f.name, getattr(report, f.name)) for f in dataclasses.fields(report)]
    return [(name.replace("_", " "), fmt(value)) for name, value in values
            if name != "stage" and not isinstance(value, dict | list | StageReport)]


def report_seconds(report: dict[str, Any]) -> float | None:
    for key in ("seconds", "wall_seconds", "wall_seconds_this_run"):
        if isinstance(report.get(key), int | float):
            return float(report[key])
    for key in ("timings_s", "timings", "seconds_by_stage"):
        if isinstance(report.get(key), dict):
            return float(sum(v for v in report[key].values() if isinstance(v, int | float)))
    return None


def read_json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
