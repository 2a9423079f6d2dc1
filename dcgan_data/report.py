"""One HTML page per pipeline run: every stage's JSON figures and pictures, in stage order.

The page links its images by relative path, so it opens from the run's folder (or a copy of
it) in any browser; a small script marks any picture that failed to load.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

from dcgan_data.errors import DcganDataError, InputError
from dcgan_data.files import atomic_write_text

MAX_LIST_ITEMS = 20  # lists in reports (failed keys...) are shown up to this many


def _stage_dirs(out: Path) -> list[tuple[float, Path]]:
    """Folders of OUT (itself included) with a stage report, a training run or pictures,
    in the order they were written (which is the pipeline's order)."""
    found = []
    for folder in [out, *sorted(p for p in out.rglob("*") if p.is_dir())]:
        if folder.name in ("samples", "checkpoints"):  # shown with their training run
            continue
        marks = [*folder.glob("*_report.json"), *folder.glob("metrics.jsonl"),
                 *folder.glob("*.png")]
        if marks:
            found.append((min(m.stat().st_mtime for m in marks), folder))
    return sorted(found)


def _figure_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    rows = []
    for key, value in report.items():
        if isinstance(value, list):
            shown = ", ".join(_short(v) for v in value[:MAX_LIST_ITEMS])
            more = f" (+{len(value) - MAX_LIST_ITEMS} more)" if len(value) > MAX_LIST_ITEMS else ""
            rows.append((key, f"{len(value)} item(s): {shown}{more}" if value else "none"))
        elif isinstance(value, dict):
            rows.append((key, ", ".join(f"{k}: {_short(v)}" for k, v in value.items()) or "none"))
        else:
            rows.append((key, _short(value)))
    return rows


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        more = f", ... ({len(value)} in all)" if len(value) > MAX_LIST_ITEMS else ""
        return "[" + ", ".join(_short(v) for v in value[:MAX_LIST_ITEMS]) + more + "]"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _training_figures(folder: Path) -> list[tuple[str, str]]:
    lines = (folder / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    if not records:
        return [("steps logged", "0")]
    return [("steps logged", str(len(records))),
            *((f"last {k}", _short(v)) for k, v in records[-1].items())]


def _pictures(folder: Path) -> list[Path]:
    pictures = sorted(folder.glob("*.png"))
    samples = sorted((folder / "samples").glob("*.png"))
    return pictures + samples[-1:]  # the latest sample grid of a training run


def _section(out: Path, folder: Path, page_dir: Path) -> str:
    title = folder.relative_to(out).as_posix() if folder != out else out.name
    parts = [f"<section><h2>{html.escape(title)}</h2>"]
    for report_path in sorted(folder.glob("*_report.json")):
        try:
            report = json.loads(report_path.read_text(encoding="utf-8"))
        except ValueError as exc:
            parts.append(f"<p class=bad>{html.escape(report_path.name)}: unreadable ({exc})</p>")
            continue
        parts.append(_table(report_path.name, _figure_rows(report)))
    if (folder / "metrics.jsonl").exists():
        parts.append(_table("training (metrics.jsonl)", _training_figures(folder)))
    for picture in _pictures(folder):
        src = quote(Path(os.path.relpath(picture, page_dir)).as_posix())
        name = html.escape(picture.relative_to(out).as_posix())
        parts.append(f'<figure><img src="{src}" alt="{name}"><figcaption>{name}</figcaption>'
                     "</figure>")
    parts.append("</section>")
    return "\n".join(parts)


def _table(caption: str, rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                   for k, v in rows)
    return f"<table><caption>{html.escape(caption)}</caption>{body}</table>"


# Counts the page's pictures as they load, shows a warning for any that fails, and leaves the
# tally in <body data-images-ok data-images-broken> for tools that check the page.
_SCRIPT = """
<script>
window.addEventListener("load", () => {
  const imgs = [...document.images];
  const broken = imgs.filter(i => !(i.complete && i.naturalWidth > 0));
  broken.forEach(i => i.insertAdjacentHTML("afterend",
    "<p class=bad>missing picture: " + i.getAttribute("src") + "</p>"));
  document.body.dataset.imagesOk = imgs.length - broken.length;
  document.body.dataset.imagesBroken = broken.length;
});
</script>
"""

_STYLE = """
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
section { border-top: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; }
caption { text-align: left; font-weight: bold; }
th, td { text-align: left; vertical-align: top; padding: 2px 12px 2px 0; }
td { max-width: 80em; overflow-wrap: anywhere; }
img { max-width: 100%; image-rendering: pixelated; border: 1px solid #ddd; }
.bad { color: #b00; font-weight: bold; }
</style>
"""


def build_report(out: str | os.PathLike, page_dir: str | os.PathLike | None = None) -> str:
    """The HTML page for pipeline output folder `out`, to be saved in `page_dir` (default out)."""
    out = Path(out)
    page_dir = Path(page_dir or out).resolve()
    if not out.is_dir():
        raise InputError(f"{out}: no such output folder")
    sections = [_section(out, folder, page_dir) for _, folder in _stage_dirs(out)]
    if not sections:
        raise InputError(f"{out}: no stage reports (*_report.json) or training runs found")
    title = html.escape(f"dcgan-data: {out.resolve().name}")
    return (f"<!doctype html><html><head><meta charset=utf-8><title>{title}</title>{_STYLE}"
            f"</head><body><h1>{title}</h1>\n" + "\n".join(sections) + _SCRIPT + "</body></html>\n")


def write_report(out: str | os.PathLike, path: str | os.PathLike | None = None) -> Path:
    """Write the page to `path` (default OUT/report.html), atomically."""
    target = Path(path) if path else Path(out) / "report.html"
    atomic_write_text(target, build_report(out, target.parent))
    return target


def browser_image_tally(page: str | os.PathLike) -> tuple[int, int]:
    """Open `page` in headless Chromium; return how many of its pictures loaded and failed."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        raise DcganDataError("chromium is not installed (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=5000",
             "--dump-dom", Path(page).resolve().as_uri()],
            capture_output=True, text=True, timeout=120, check=True,
        ).stdout
    tally = re.search(r'<body data-images-ok="(\d+)" data-images-broken="(\d+)"', dom)
    if tally is None:
        raise DcganDataError(f"{page}: the page's script did not run in chromium")
    return int(tally[1]), int(tally[2])
