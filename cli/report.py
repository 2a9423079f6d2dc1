"""`dcgan-data report`."""

from __future__ import annotations

import click


@click.command()
@click.argument("out", type=click.Path())
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="HTML file to write [default: OUT/report.html].")
@click.option("--check", is_flag=True,
              help="Open the page in headless Chromium and fail if any picture does not load.")
def report(out: str, output: str | None, check: bool) -> None:
    """Gather every stage's report and pictures under OUT into one HTML page."""
    from dcgan_data.errors import DcganDataError
    from dcgan_data.report import browser_image_tally, write_report

    page = write_report(out, output)
    click.echo(f"report: {page}")
    if check:
        loaded, broken = browser_image_tally(page)
        if broken:
            raise DcganDataError(f"{page}: {broken} of {loaded + broken} pictures do not load")
        click.echo(f"checked in chromium: all {loaded} pictures load")
