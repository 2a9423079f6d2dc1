"""`dcgan-data export`: shards into the formats other trainers read."""

from __future__ import annotations

from pathlib import Path

import click

from dcgan_data.export.options import ExportOptions, ExportWeightsOptions
from dcgan_data_cli.options import option_from


@click.command("export")
@click.argument("shards", type=click.Path(path_type=Path))
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path),
              help="Output directory.")
@option_from(ExportOptions, "format", required=True)
@option_from(ExportOptions, "rows_per_part")
@option_from(ExportOptions, "threads")
def export(shards: Path, out: Path, **settings) -> None:
    """Export a shard directory as PNG images other trainers read, with keys and labels.

    Labels come from SHARDS/labels.csv when present. Re-running the same command resumes.
    """
    from dcgan_data.export.stage import REPORT
    from dcgan_data.export.stage import export as run_export

    options = ExportOptions(**settings)
    report = run_export(shards, out, options=options)
    rate = report["images_per_s"]
    click.echo(
        f"exported {report['rows']} images as {options.format} into {out} "
        f"({_count(report['parts'], 'part')}, {report['parts_resumed']} already done; "
        f"{report['bytes_written'] / 1e6:.1f} MB"
        + (f"; {rate:g} images/s, {report['mb_per_s']:g} MB/s" if rate else "")
        + f"); report: {out / REPORT}"
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


@click.command("export-weights")
@click.argument("run", type=click.Path(path_type=Path))
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for netG.pth, netD.pth and weights.json.")
@option_from(ExportWeightsOptions, "checkpoint")
def export_weights(run: Path, out: Path, **settings) -> None:
    """Write a run's G and D as pytorch/examples' dcgan main.py loads them (--netG, --netD)."""
    from dcgan_data.export.weights import export_weights as run_export

    info = run_export(run, out, ExportWeightsOptions(**settings))
    click.echo(f"wrote {info['netG']} and {info['netD']} (step {info['step']}, size "
               f"{info['size']}, nz {info['nz']}, ngf {info['ngf']}, ndf {info['ndf']})")
    if not info["examples_compatible"]:
        click.echo("note: pytorch/examples' dcgan builds 64 px networks only; these are "
                   f"{info['size']} px", err=True)
