"""`dcgan-data report`."""

from __future__ import annotations

from pathlib import Path

import click

from dcgan_data_cli.names import Renamed


@click.command()
@click.argument("out", type=click.Path())
@click.option("-o", "--out", "--output", "output", cls=Renamed, old_names=("--output",),
              type=click.Path(dir_okay=False), default=None,
              help="HTML file to write [default: OUT/report.html]; its plots go in "
                   "<name>_files/ beside it.")
@click.option("--check", is_flag=True,
              help="Open the page in headless Chromium; fail if a picture does not load or a "
                   "raw dict shows outside the collapsed parts.")
@click.option("--screenshot", type=click.Path(dir_okay=False), default=None,
              help="With --check, also save a PNG of the whole page here.")
def report(out: str, output: str | None, check: bool, screenshot: str | None) -> None:
    """Gather every stage's report and pictures under OUT into one HTML dashboard."""
    from dcgan_data.core.errors import DcganDataError
    from dcgan_data.report.browser import browser_check
    from dcgan_data.report.page import write_report

    page = write_report(out, output)
    click.echo(f"report: {page}")
    if screenshot and not check:
        raise click.UsageError("--screenshot needs --check")
    if check:
        result = browser_check(page, screenshot)
        pictures = result.images_ok + result.images_broken
        if result.images_broken:
            raise DcganDataError(f"{page}: {result.images_broken} of {pictures} pictures do "
                                 "not load")
        if result.raw_dicts:
            raise DcganDataError(f"{page}: raw dict text shows {result.raw_dicts} time(s) "
                                 "outside the collapsed parts")
        click.echo(f"checked in chromium: all {pictures} pictures load, no raw dicts"
                   + (f"; screenshot {Path(screenshot)}" if screenshot else ""))
