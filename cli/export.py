"""`dcgan-data export`: shards into the formats other trainers read."""

from __future__ import annotations

from pathlib import Path

import click

from dcgan_data.core.checks import EXPORT
from dcgan_data.export.stage import DEFAULT_ROWS_PER_PART, FORMATS, REPORT
from dcgan_data_cli.numbers import number_option


@click.command("export")
@click.argument("shards", type=click.Path(path_type=Path))
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path),
              help="Output directory.")
@click.option("--format", "fmt", required=True, type=click.Choice(FORMATS),
              help="folder: PNGs for ImageFolder; webdataset: tar shards; stylegan: "
                   "StyleGAN2-ADA/3 dataset.zip; hf: Hugging Face parquet dataset.")
@number_option("--rows-per-part", allowed=EXPORT["rows_per_part"], default=DEFAULT_ROWS_PER_PART,
               show_default=True, help="Rows per tar / parquet file, and per resumable unit.")
@number_option("--threads", allowed=EXPORT["threads"], default=None,
               help="Threads encoding PNGs  [default: one per core]")
def export(shards: Path, out: Path, fmt: str, rows_per_part: int, threads: int | None) -> None:
    """Export a shard directory as PNG images other trainers read, with keys and labels.

    Labels come from SHARDS/labels.csv when present. Re-running the same command resumes.
    """
    from dcgan_data.export.stage import export as run_export

    report = run_export(shards, out, fmt, rows_per_part=rows_per_part, threads=threads)
    rate = report["images_per_s"]
    click.echo(
        f"exported {report['rows']} images as {fmt} into {out} "
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
@click.option("--checkpoint", default=None,
              help="A checkpoint file, or a name in RUN/checkpoints [default: last.pt].")
def export_weights(run: Path, out: Path, checkpoint: str | None) -> None:
    """Write a run's G and D as pytorch/examples' dcgan main.py loads them (--netG, --netD)."""
    from dcgan_data.export.stage import export_weights as run_export

    info = run_export(run, out, checkpoint)
    click.echo(f"wrote {info['netG']} and {info['netD']} (step {info['step']}, size "
               f"{info['size']}, nz {info['nz']}, ngf {info['ngf']}, ndf {info['ndf']})")
    if not info["examples_compatible"]:
        click.echo("note: pytorch/examples' dcgan builds 64 px networks only; these are "
                   f"{info['size']} px", err=True)
