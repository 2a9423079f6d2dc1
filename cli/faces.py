"""`dcgan-data faces`: face crops from a crawl list, as shards."""

from __future__ import annotations

from pathlib import Path

import click

from dcgan_data.core.checks import FACES
from dcgan_data_cli.engine import engine_options
from dcgan_data_cli.numbers import number_option


@click.command("faces")
@click.argument("crawl", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output directory: shards, faces.csv, faces_report.json, faces.png.")
@number_option("--workers", allowed=FACES["workers"], default=16, show_default=True,
               help="Fetch threads per process.")
@number_option("--processes", allowed=FACES["processes"], default=None,
               help="Processes detecting faces, one unit each  [default: CPU count]")
@number_option("--timeout", allowed=FACES["timeout"], default=10.0, show_default=True,
               help="Seconds allowed per request (headers and body).")
@number_option("--retries", allowed=FACES["retries"], default=2, show_default=True,
               help="Retries after a timeout, 429 or 5xx, with doubling back-off from 1 s.")
@number_option("--max-bytes", allowed=FACES["max_bytes"], default=20 * 1024 * 1024,
               show_default=True, help="Largest image accepted; longer bodies are cut off.")
@number_option("--max-redirects", allowed=FACES["max_redirects"], default=5, show_default=True)
@number_option("--max-list-bytes", allowed=FACES["max_list_bytes"], default=16 << 30,
               show_default=True,
               help="Largest decompressed .gz/.bz2/.xz/.zst list (or Parquet list as text).")
@click.option("--detector", type=click.Choice(["mtcnn", "haar"]), default="mtcnn",
              show_default=True, help="MTCNN (ONNX on OpenCV DNN) or OpenCV's Haar cascade.")
@number_option("--min-face", allowed=FACES["min_face"], default=64, show_default=True,
               help="Smallest face side kept, in source-image pixels.")
@number_option("--min-score", allowed=FACES["min_score"], default=None,
               help="Smallest detector score kept  [default: 0.9 for mtcnn, 5 for haar]")
@number_option("--margin", allowed=FACES["margin"], default=0.25, show_default=True,
               help="Grow the square crop by this fraction of the face on each side.")
@number_option("--size", allowed=FACES["size"], default=64, show_default=True,
               help="Side of the saved crops.")
@click.option("--keep-originals", type=click.Path(file_okay=False, path_type=Path),
              help="Also keep every fetched image's bytes in this directory.")
@click.option("--ignore-robots-headers", is_flag=True,
              help="Fetch images whose response carries X-Robots-Tag: noai / noimageai.")
@click.option("--allow-private-addresses", is_flag=True,
              help="Also fetch from loopback, private and link-local hosts (a list you trust).")
@click.option("--local-root", type=click.Path(file_okay=False, path_type=Path),
              help="Local paths in the list must lie below this folder  [default: the list's]")
@click.option("--url-col", default=None,
              help="Column (field) naming the image in a .parquet/.tsv/.csv/.jsonl list  "
                   "[default: url, URL, link or image_url]")
@click.option("--label-col", default=None,
              help="Column (field) kept as the label  [default: name, label or caption]")
@number_option("--lines-per-shard", allowed=FACES["lines_per_shard"], default=256,
               show_default=True,
               help="Crawl-list entries (blank and # comment lines aside) per work unit, "
                    "one shard each; a killed run redoes one unit.")
@engine_options
def faces(crawl: Path, out: Path, workers: int, processes: int | None, timeout: float,
          retries: int, max_bytes: int, max_redirects: int, max_list_bytes: int,
          detector: str, min_face: int,
          min_score: float | None, margin: float, size: int, keep_originals: Path | None,
          ignore_robots_headers: bool, allow_private_addresses: bool, local_root: Path | None,
          url_col: str | None, label_col: str | None, lines_per_shard: int, engine: str,
          ray_address: str | None) -> None:
    """Fetch the images a crawl list names, detect faces, keep the large ones as crops.

    CRAWL holds one http(s) URL or local path per line, or `name<TAB>url`; .tsv, .csv,
    .jsonl and .parquet lists need a url column (--url-col). Lists compressed as .gz, .bz2,
    .xz or .zst are read too. Re-running the same command resumes.
    """
    from dcgan_data.engines.units import make_engine
    from dcgan_data.faces.crawl import FetchOptions
    from dcgan_data.faces.stage import FaceOptions
    from dcgan_data.faces.stage import faces as run_faces

    options = FaceOptions(
        detector=detector, min_face=min_face, min_score=min_score, margin=margin, size=size,
        workers=workers, keep_originals=keep_originals, url_col=url_col, label_col=label_col,
        max_list_bytes=max_list_bytes,
        fetch=FetchOptions(timeout=timeout, retries=retries, max_bytes=max_bytes,
                           max_redirects=max_redirects,
                           respect_robots=not ignore_robots_headers,
                           allow_private_addresses=allow_private_addresses,
                           local_root=local_root),
    )
    report = run_faces(crawl, out, options, lines_per_shard=lines_per_shard,
                       engine=make_engine(engine, processes, ray_address))
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
                             f"{_why_none_kept(report, min_face)}")


def _why_none_kept(report: dict, min_face: int) -> str:
    if not report["decoded"]:
        return (f"none of the {report['entries']} entries gave an image (the failures are "
                "listed above)")
    if not report["boxes"]:
        return (f"no face of about --min-face {min_face} px or larger found in the "
                f"{report['decoded']} images decoded")
    return (f"the {report['boxes']} faces found are all smaller than --min-face {min_face} px "
            "or below --min-score")
