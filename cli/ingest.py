"""`dcgan-data pack`, `ingest` and `inspect`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from dcgan_data.ingest.options import IngestOptions, InspectOptions, PackOptions
from dcgan_data_cli.engine import engine_options
from dcgan_data_cli.options import option_from


@click.command()
@click.argument("images", nargs=-1, required=True)
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False),
              help="LMDB directory to write (e.g. mine_train_lmdb).")
@option_from(PackOptions, "format")
@option_from(PackOptions, "quality")
@option_from(PackOptions, "short_side")
def pack(images: tuple[str, ...], out: str, **settings) -> None:
    """Pack image files, folders or globs into an LSUN-format LMDB.

    Keys are the SHA-1 hex of the encoded bytes, as LSUN's ids look.
    """
    from dcgan_data.ingest.pack import pack_images

    report = pack_images(images, out, PackOptions(**settings))
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
@option_from(IngestOptions, "size")
@option_from(IngestOptions, "workers")
@option_from(IngestOptions, "rows_per_shard")
@option_from(IngestOptions, "max_pixels")
@option_from(IngestOptions, "local_root", type=click.Path(file_okay=False))
@option_from(IngestOptions, "max_bytes")
@engine_options
def ingest(src: str, out: str, engine: str, ray_address: str | None, **settings) -> None:
    """Crop and resize an LSUN LMDB (or a folder of them, or of images) into shards.

    SRC may also be webdataset .tar shards (a .tar or a folder of them) or a Hugging Face
    dataset (a save_to_disk folder, or .parquet files) with an image column.

    Writes OUT/manifest.json, OUT/shard-*.npy, OUT/ingest_report.json and
    OUT/contact_sheet.png. Re-running the same command resumes.
    """
    from dcgan_data.engines.runner import make_engine
    from dcgan_data.ingest.stage import ingest as run_ingest

    options = IngestOptions(**settings)
    report = run_ingest(src, out, options,
                        engine=make_engine(engine, options.workers, ray_address))
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
@option_from(InspectOptions, "sheet", type=click.Path(dir_okay=False))
@option_from(InspectOptions, "sample")
def inspect(path: str, **settings) -> None:
    """Summarise an LMDB, image folder or shard directory; verify shard checksums.

    Prints the summary as JSON (and with --sheet writes a contact sheet); writes nothing
    else. Exits 1 when a shard fails verification.
    """
    from dcgan_data.core.errors import DcganDataError
    from dcgan_data.ingest.inspect import inspect as run_inspect

    summary, _ = run_inspect(path, InspectOptions(**settings))
    click.echo(json.dumps(summary, indent=2))
    if summary.get("problems"):
        raise DcganDataError(f"{path}: {len(summary['problems'])} shard(s) failed verification: "
                             f"{summary['problems'][0]}")
