"""Checking a report page in headless Chromium: its pictures load, no raw dict shows."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dcgan_data.core.errors import DcganDataError

SHOT_WIDTH = 1280  # px: the width of the checked page and its screenshot


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


def checked_page(page: str | os.PathLike, screenshot: str | os.PathLike | None = None) -> str:
    """Check `page` in headless Chromium (see `browser_check`): a line saying what was
    checked, or a DcganDataError naming what failed."""
    result = browser_check(page, screenshot)
    pictures = result.images_ok + result.images_broken
    if result.images_broken:
        raise DcganDataError(f"{page}: {result.images_broken} of {pictures} pictures do not "
                             "load")
    if result.raw_dicts:
        raise DcganDataError(f"{page}: raw dict text shows {result.raw_dicts} time(s) outside "
                             "the collapsed parts")
    return (f"checked in chromium: all {pictures} pictures load, no raw dicts"
            + (f"; screenshot {Path(screenshot)}" if screenshot else ""))
