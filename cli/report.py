"""`dcgan-data report`."""

from __future__ import annotations

import click

from dcgan_data.report.options import ReportOptions
from dcgan_data_cli.names import Renamed
from dcgan_data_cli.options import option_from


@click.command()
@click.argument("folder", metavar="OUT", type=click.Path())
@click.option("-o", "--out", "--output", "out", cls=Renamed, old_names=("--output",),
              type=click.Path(dir_okay=False), default=None,
              help="HTML file to write [default: OUT/report.html]; its plots go in "
                   "<name>_files/ beside it.")
@option_from(ReportOptions, "check")
@option_from(ReportOptions, "screenshot", type=click.Path(dir_okay=False))
def report(folder: str, out: str | None, **settings) -> None:
    """Gather every stage's report and pictures under OUT into one HTML dashboard."""
    from dcgan_data.report.browser import checked_page
    from dcgan_data.report.page import write_report

    options = ReportOptions(**settings)
    page = write_report(folder, out)
    click.echo(f"report: {page}")
    if options.check:
        click.echo(checked_page(page, options.screenshot))
