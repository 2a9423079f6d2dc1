"""`dcgan-data pack`, `ingest` and `inspect`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from dcgan_data.core.checks import INGEST, PACK
from dcgan_data_cli.engine import engine_options
from dcgan_data_cli.numbers import number_option


@click.command()
@click.argument("images", nargs=-1, required=True)
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False),
              help="LMDB directory to write (e.g. mine_train_lmdb).")
@click.option("--format", "fmt", type=click.Choice(["jpeg", "webp"]), default="jpeg",
              show_default=True,
              help="JPEG as LSUN's scene categories; WebP is smaller but JPEG-only decoders "
                   "(GPU, torchvision.io.decode_jpeg) cannot read it.")
@number_option("--quality", allowed=PACK["quality"], default=75, show_default=True)
@number_option("--short-side", allowed=PACK["short_side"], default=256, show_default=True,
               help="Shrink so the short side is this many px (LSUN uses 256).")
def pack(images: tuple[str, ...], out: str, fmt: str, quality: int, short_side: int) -> None:
    """Pack image files, folders or globs into an LSUN-format LMDB.

    Keys are the SHA-1 hex of the encoded bytes, as LSUN's ids look.
    """
    from dcgan_data.ingest.lsun import pack_images

    report = pack_images(images, out, fmt, quality, short_side)
    notes = [f"{report['entries']} entries"]
    if report["already_present"]:
        notes.append(f"{report['already_present']} already there")
    if report["repeated_in_input"]:
        notes.append(f"{report['repeated_in_input']} repeating an image given before")
    notes.append(f"{len(report['failed'])} failed")
    click.echo(f"packed {report['packed']} images into {out} ({', '.join(notes)})")
    for failure in report["failed"]:
        click.echo(f"  skipped {failure['key']}: {failure['reason']}", err=True)


@click.command()
@click.argument("src", type=click.Path())
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False),
              help="Shard directory to write.")
@number_option("--size", allowed=INGEST["size"], default=64, show_default=True,
               help="Output side in px (center crop, area resize).")
@number_option("--workers", allowed=INGEST["workers"], default=None,
               help="Decoding processes [default: all cores].")
@number_option("--rows-per-shard", allowed=INGEST["rows_per_shard"], default=None,
               help="Rows in each shard [default: as many as fit in 768 MiB: 65,536 at 64 px].")
@number_option("--max-pixels", allowed=INGEST["max_pixels"], default=50_000_000,
               show_default=True,
               help="Refuse images whose header declares more pixels (decompression bombs).")
@click.option("--local-root", type=click.Path(file_okay=False), default=None,
              help="Files named by a Hugging Face dataset's path cells must lie below this "
                   "folder  [default: the dataset's]")
@number_option("--max-bytes", allowed=INGEST["max_bytes"], default=20 * 1024 * 1024,
               show_default=True, help="Largest file a path cell may name.")
@engine_options
def ingest(src: str, out: str, size: int, workers: int | None, rows_per_shard: int | None,
           max_pixels: int, local_root: str | None, max_bytes: int, engine: str,
           ray_address: str | None) -> None:
    """Crop and resize an LSUN LMDB (or a folder of them, or of images) into shards.

    SRC may also be webdataset .tar shards (a .tar or a folder of them) or a Hugging Face
    dataset (a save_to_disk folder, or .parquet files) with an image column.

    Writes OUT/manifest.json, OUT/shard-*.npy, OUT/ingest_report.json and
    OUT/contact_sheet.png. Re-running the same command resumes.
    """
    from dcgan_data.engines.units import make_engine
    from dcgan_data.ingest.stage import ingest as run_ingest

    report = run_ingest(src, out, size=size, rows_per_shard=rows_per_shard,
                        max_pixels=max_pixels, engine=make_engine(engine, workers, ray_address),
                        local_root=local_root, max_bytes=max_bytes)
    click.echo(f"ingested {report['written']} of {report['read']} images into {out} "
               f"({report['failed']} failed{_by_reason(report['failed_by_reason'])}; "
               f"{report['images_per_s']} images/s); report: "
               f"{Path(out) / 'ingest_report.json'}")
    if not report["written"]:
        from dcgan_data.core.errors import DcganDataError

        raise DcganDataError(f"ingest: no image written, so nothing to train on: all "
                             f"{report['read']} failed{_by_reason(report['failed_by_reason'])}")
    if report.get("label_classes"):
        click.echo(f"labels.csv: each image's class folder ({report['label_classes']} "
                   "classes)")


def _by_reason(counts: dict[str, int]) -> str:
    """': corrupt 1, truncated 2' (nothing when none failed)."""
    return ": " + ", ".join(f"{reason} {n}" for reason, n in counts.items()) if counts else ""


@click.command()
@click.argument("path", type=click.Path())
@click.option("--sheet", type=click.Path(dir_okay=False), default=None,
              help="Also write a contact sheet of the sampled images to this PNG.")
@number_option("--sample", allowed=INGEST["sample"], default=64, show_default=True,
               help="How many images to decode / show.")
def inspect(path: str, sheet: str | None, sample: int) -> None:
    """Summarise an LMDB, image folder or shard directory; verify shard checksums.

    Prints the summary as JSON (and with --sheet writes a contact sheet); writes nothing
    else. Exits 1 when a shard fails verification.
    """
    from dcgan_data.core.errors import DcganDataError
    from dcgan_data.core.images import save_png
    from dcgan_data.ingest.stage import inspect as run_inspect

    summary, grid = run_inspect(path, sample=sample)
    if grid is not None and sheet:
        save_png(sheet, grid)
        summary["sheet"] = sheet
    click.echo(json.dumps(summary, indent=2))
    if summary.get("problems"):
        raise DcganDataError(f"{path}: {len(summary['problems'])} shard(s) failed verification: "
                             f"{summary['problems'][0]}")
