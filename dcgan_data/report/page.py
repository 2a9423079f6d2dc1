"""One dashboard page per pipeline run: a summary first, then one section per stage.

Each stage's section shows its headline figures, its pictures and plots drawn from its report
(matplotlib PNGs written to a folder beside the page, `<page>_files/`). Parameters and the raw
JSON stay available in collapsed parts. Stages the page does not know (a new stage's
`*_report.json`) still get a section with their scalar figures and pictures.

Everything is linked by relative path, so the page opens offline from the run's folder, or a
copy of it, in any browser; a small script marks any picture that failed to load.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dcgan_data.audit.section import audit_section
from dcgan_data.core import status
from dcgan_data.core.errors import InputError
from dcgan_data.core.files import atomic_write_text
from dcgan_data.dedup.section import dedup_section
from dcgan_data.faces.section import faces_section
from dcgan_data.ingest.section import ingest_section
from dcgan_data.report.html import (
    Page,
    Section,
    Stage,
    Summary,
    esc,
    fmt_seconds,
    generic_section,
    raw_json,
    table,
)
from dcgan_data.train.section import train_section

SKIP_DIRS = {"samples", "checkpoints", status.PARTS}


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


def draw_section(page: Page, stage: Stage, summary: Summary) -> Section:
    """The stage's own section, or where its report holds something it cannot draw, the
    generic one: every scalar figure that could be read, and what could not."""
    try:
        return SECTIONS.get(stage.kind, generic_section)(page, stage, summary)
    # InputError: a typed report (core.report.StageReport) missing a key it needs
    except (InputError, TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
        stage.problems.append(f"the {stage.kind} section could not be drawn "
                              f"({type(exc).__name__}: {exc})")
        return generic_section(page, stage, summary)


SECTIONS = {"ingest": ingest_section, "dedup": dedup_section, "faces": faces_section,
            "train": train_section, "audit": audit_section}


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
