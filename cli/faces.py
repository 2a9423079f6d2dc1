"""`dcgan-data faces`: face crops from a crawl list, as shards."""

from __future__ import annotations

from pathlib import Path

import click

from dcgan_data.faces.options import FaceOptions, FetchOptions
from dcgan_data_cli.engine import engine_options
from dcgan_data_cli.options import option_from

FOLDER = click.Path(file_okay=False, path_type=Path)


@click.command("faces")
@click.argument("crawl", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--out", required=True, type=FOLDER,
              help="Output directory: shards, faces.csv, faces_report.json, faces.png.")
@option_from(FaceOptions, "workers")
@option_from(FaceOptions, "processes")
@option_from(FetchOptions, "timeout")
@option_from(FetchOptions, "retries")
@option_from(FetchOptions, "max_bytes")
@option_from(FetchOptions, "max_redirects")
@option_from(FaceOptions, "max_list_bytes")
@option_from(FaceOptions, "detector")
@option_from(FaceOptions, "min_face")
@option_from(FaceOptions, "min_score")
@option_from(FaceOptions, "margin")
@option_from(FaceOptions, "size")
@option_from(FaceOptions, "keep_originals", type=FOLDER)
@option_from(FetchOptions, "respect_robots")
@option_from(FetchOptions, "allow_private_addresses")
@option_from(FetchOptions, "local_root", type=FOLDER)
@option_from(FaceOptions, "url_col")
@option_from(FaceOptions, "label_col")
@option_from(FaceOptions, "lines_per_shard")
@engine_options
def faces(crawl: Path, out: Path, engine: str, ray_address: str | None,
          **settings: object) -> None:
    """Fetch the images a crawl list names, detect faces, keep the large ones as crops.

    CRAWL holds one http(s) URL or local path per line, or `name<TAB>url`; .tsv, .csv,
    .jsonl and .parquet lists need a url column (--url-col). Lists compressed as .gz, .bz2,
    .xz or .zst are read too. Re-running the same command resumes.
    """
    from dcgan_data.engines.runner import make_engine
    from dcgan_data.faces.stage import faces as run_faces

    fetch = {name: settings.pop(name) for name in FetchOptions.defaults() if name in settings}
    options = FaceOptions(**settings, fetch=FetchOptions(**fetch))
    report = run_faces(crawl, out, options,
                       engine=make_engine(engine, options.processes, ray_address))
    rate, resumed = report["images_per_second"], report["units_resumed"]
    click.echo(
        f"{report['entries']} entries, {report['fetched']} fetched, {report['failed']} failed; "
        f"{report['images_with_face']} images with a face, {report['boxes']} boxes, "
        f"{report['kept']} kept -> {out}"
        + (f" at {rate:g} images/s" if rate is not None else "")
        + (f" ({resumed} of {report['shards']} units were already done)" if resumed else "")
    )
    for reason, count in report["failed_by_reason"].items():
        click.echo(f"  {reason}: {count}  e.g. {report['failed_examples'][reason][0]}")
    if not report["kept"]:
        from dcgan_data.core.errors import DcganDataError

        raise DcganDataError(f"faces: no face kept, so nothing to train on: "
                             f"{_why_none_kept(report, options.min_face)}")


def _why_none_kept(report: dict, min_face: int) -> str:
    if not report["decoded"]:
        return (f"none of the {report['entries']} entries gave an image (the failures are "
                "listed above)")
    if not report["boxes"]:
        return (f"no face of about --min-face {min_face} px or larger found in the "
                f"{report['decoded']} images decoded")
    return (f"the {report['boxes']} faces found are all smaller than --min-face {min_face} px "
            "or below --min-score")
