"""`dcgan-data dedup`: remove near-duplicate images by the DCGAN paper's semantic hash."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True,
              help="Output directory: kept shards, duplicates.csv, dedup_report.json, "
                   "duplicates.png, hashes.npy, hash_model.pt.")
@click.option("--size", default=64, show_default=True, help="Side of the output images.")
@click.option("--radius", default=0, show_default=True,  # = dcgan_data.dedup.DEFAULT_RADIUS
              help="Also group hashes within this Hamming distance (0: equal hashes, "
                   "as in the paper; 1 finds more near duplicates, a little less "
                   "precisely).")
@click.option("--probe/--no-probe", default=True, show_default=True,
              help="Also group images whose slightly shifted (up to half a pixel of the "
                   "32x32 crop) or zoomed (8.5%) versions hash equal: finds shifted and "
                   "trimmed copies. --no-probe: equal hashes only, the paper's rule.")
@click.option("--keep", type=click.Choice(["first", "largest"]), default="first",
              show_default=True,
              help="Which image of a group to keep: the first key, or the largest source.")
@click.option("--model", "model_path", type=click.Path(path_type=Path),
              help="Reuse a trained hash model (hash_model.pt) instead of training one.")
@click.option("--against", type=click.Path(path_type=Path),
              help="Also remove images of SRC that duplicate images of this shard set "
                   "(e.g. SRC = train, OTHER = test).")
@click.option("--dry-run", is_flag=True,
              help="Write the report, CSV and sheet, but no shards.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="auto: cuda when available, else cpu.")
@click.option("--workers", type=int, help="Processes for ingest, threads for torch.")
@click.option("--seed", default=0, show_default=True)
@click.option("--epochs", type=float, help="Training passes over the sampled crops.")
@click.option("--min-steps", type=int, help="Training steps at least.")
@click.option("--max-steps", type=int, help="Training steps at most.")
@click.option("--max-train-images", type=int, help="Crops sampled for training.")
@click.option("--batch-size", type=int)
@click.option("--lr", type=float)
@click.option("--dropout", type=float, help="Dropout on the code units while training.")
@click.option("--code-noise", type=float,
              help="Noise on the code pre-activations while training.")
@click.option("--max-bucket-share", default=0.5, show_default=True,
              help="Refuse to run when one hash holds more than this share of the images.")
def dedup(src: Path, out: Path, size: int, radius: int, probe: bool, keep: str,
          model_path: Path | None, against: Path | None, dry_run: bool, device: str,
          workers: int | None, seed: int, max_bucket_share: float, **knobs) -> None:
    """De-duplicate SRC (a shard directory, an LSUN LMDB or a folder of images) into OUT.

    Trains the paper's 3072-128-3072 denoising autoencoder on 32x32 crops (or loads
    --model), hashes every image to 128 bits, keeps one image per group of equal hashes
    (or of equal probe hashes, or hashes within --radius) and writes the kept images as
    shards.
    """
    from dcgan_data.dedup import dedup as run
    from dcgan_data.hashing import HashConfig

    config = HashConfig(**{k: v for k, v in knobs.items() if v is not None})
    report = run(src, out, size=size, radius=radius, keep=keep, model_path=model_path,
                 against=against, dry_run=dry_run, device=device, workers=workers, seed=seed,
                 config=config, max_bucket_share=max_bucket_share, probe=probe)
    where = "dry run, no shards written" if dry_run else f"shards in {out}"
    click.echo(f"dedup: kept {report['kept']} of {report['images']} images, removed "
               f"{report['removed']} in {report['groups_with_duplicates']} groups "
               f"({where}); report {out / 'dedup_report.json'}")
