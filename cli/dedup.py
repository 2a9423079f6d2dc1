"""`dcgan-data dedup`: remove near-duplicate images (candidates from the DCGAN paper's semantic
hash and a perceptual descriptor, each pair verified on the images)."""

from __future__ import annotations

from pathlib import Path

import click

from dcgan_data.core.checks import DEDUP, HASH, parse_partitions
from dcgan_data.dedup.options import MAX_FALSE_SHARE, SELF_FIT_MIN_ROWS
from dcgan_data.dedup.partition import DEFAULT_PARTITIONS
from dcgan_data_cli.engine import engine_options
from dcgan_data_cli.names import hash_model_option
from dcgan_data_cli.numbers import number_option


def _partitions(ctx: click.Context, param: click.Parameter, value: str) -> int | str:
    return parse_partitions("--partitions", value)


@click.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True,
              help="Output directory: kept shards, duplicates.csv, dedup_report.json, "
                   "duplicates.png, hashes.npy, hash_model.pt.")
@number_option("--size", allowed=DEDUP["size"], default=None,
               help="Side of the output images, at most the input's [default: the input "
                    "shards' side; 64 for an LMDB or a folder of images].")
@number_option("--radius", allowed=DEDUP["radius"],
               help="Also propose hashes within this Hamming distance as candidates "
                    "(default 0: equal hashes).")
@click.option("--probe/--no-probe", default=True, show_default=True,
              help="Also propose images whose slightly shifted (up to half a pixel of the "
                   "32x32 crop) or zoomed (8.5%) versions hash equal.")
@number_option("--neighbours", allowed=DEDUP["neighbours"],
               help="Nearest neighbours by perceptual (DCT) descriptor proposed per image "
                    "(default 8; 0: none).")
@number_option("--min-cosine", allowed=DEDUP["min_cosine"],
               help="Similarity (DCT descriptor cosine) a neighbour needs to be proposed; "
                    "lower finds more rotated and warped copies, at more candidates to "
                    "verify (default: dcgan_data.dedup.stage.MIN_COSINE, see docs/dedup.md).")
@click.option("--verify/--no-verify", "verified", default=True, show_default=True,
              help="Remove only pairs verified on the images (--no-verify: every candidate "
                   "pair joins its group).")
@click.option("--self-fit/--no-self-fit", default=False, show_default=True,
              help="Decide with a model fitted on SRC itself at run time (synthetic copies "
                   "and look-alike crops of its own rows; each pair set against each image's "
                   "neighbours), and report the false-removal share the run expects. "
                   "Measured no better than the fixed model on held-out photos (see "
                   f"docs/dedup.md); sets under {SELF_FIT_MIN_ROWS} images use the fixed "
                   "model.")
@number_option("--max-false-share", allowed=DEDUP["max_false_share"],
               default=MAX_FALSE_SHARE, show_default=True,
               help="With --self-fit: the share of removals allowed to be false by the run's "
                   "own estimate; the threshold is the lowest that keeps to it.")
@number_option("--verify-threshold", allowed=DEDUP["verify_threshold"],
               help="Log-odds a pair needs to count as duplicates, overriding the chosen "
                   "threshold (of the fixed model; with --self-fit, of the model fitted on "
                   "SRC); higher: fewer, surer removals.")
@click.option("--mirrors", is_flag=True,
              help="Also treat mirror images as duplicates (a mirror is a new image for "
                   "GAN training; off by default).")
@click.option("--paper-rule", is_flag=True,
              help="The DCGAN paper's rule alone: equal hashes are duplicates (no probes, "
                   "no neighbours, no verification).")
@click.option("--keep", type=click.Choice(["first", "largest"]), default="first",
              show_default=True,
              help="Which image of a group to keep: the first key, or the largest source.")
@hash_model_option("model_path", ("--model",), type=click.Path(path_type=Path),
                   help="Reuse a trained hash model (hash_model.pt) instead of training one.")
@click.option("--against", type=click.Path(path_type=Path),
              help="Also remove images of SRC that duplicate images of this shard set "
                   "(e.g. SRC = train, OTHER = test).")
@click.option("--dry-run", is_flag=True,
              help="Write the report, CSV and sheet, but no shards.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="auto: cuda when available, else cpu.")
@number_option("--workers", allowed=DEDUP["workers"],
               help="Processes for ingest and hashing, threads for training and "
                    "verification [default: all cores; 1 on a busy shared machine].")
@engine_options
@click.option("--partitions", default=DEFAULT_PARTITIONS, show_default=True, callback=_partitions,
              metavar="N|auto",
              help="Group the shared hashes in N partitions, one after another here or in "
                   "parallel on Ray, so that no process sorts them all (auto: as many as the "
                   "memory available needs). The output is the same for every N.")
@number_option("--seed", allowed=DEDUP["seed"], default=0, show_default=True,
               help="Seed of the hash model's training and of the crops it trains on, and of "
                    "the rows the decision is fitted on: the same seed on the same images "
                    "gives the same output.")
@number_option("--epochs", allowed=HASH["epochs"],
               help="The hash model's training (unused with --hash-model): passes over the "
                    "sampled crops [default: 10].")
@number_option("--min-steps", allowed=HASH["min_steps"],
               help="Training steps at least [default: 400].")
@number_option("--max-steps", allowed=HASH["max_steps"],
               help="Training steps at most [default: 700].")
@number_option("--max-train-images", allowed=HASH["max_train_images"],
               help="Crops sampled for training [default: 200,000].")
@number_option("--batch-size", allowed=HASH["batch_size"],
               help="Crops per step of the hash model's training [default: 512].")
@number_option("--lr", allowed=HASH["lr"],
               help="Adam learning rate of the hash model's training [default: 0.002].")
@number_option("--dropout", allowed=HASH["dropout"],
               help="Dropout on the code units while training.")
@number_option("--code-noise", allowed=HASH["code_noise"],
               help="Noise on the code pre-activations while training.")
@number_option("--max-bucket-share", allowed=DEDUP["max_bucket_share"], default=0.5,
               show_default=True,
               help="Refuse to run when one hash holds more than this share of the images.")
def dedup(src: Path, out: Path, size: int | None, radius: int | None, probe: bool,
          neighbours: int | None, min_cosine: float | None, verified: bool,
          verify_threshold: float | None, self_fit: bool, max_false_share: float,
          mirrors: bool, paper_rule: bool, keep: str, model_path: Path | None,
          against: Path | None, dry_run: bool, device: str, workers: int | None, seed: int,
          max_bucket_share: float, engine: str, ray_address: str | None,
          partitions: int | str, **knobs) -> None:
    """De-duplicate SRC (a shard directory, an LSUN LMDB or a folder of images) into OUT.

    Trains the paper's 3072-128-3072 denoising autoencoder on 32x32 crops (or loads
    --hash-model) and hashes every image to 128 bits; proposes candidate pairs from equal hashes,
    probe hashes and nearest neighbours by a perceptual descriptor; verifies each pair on
    the images, keeps one image per verified group and writes the kept images as shards.
    """
    from dcgan_data.dedup.stage import dedup as run
    from dcgan_data.engines.units import make_engine
    from dcgan_data.hashmodel.hashing import HashConfig

    config = HashConfig(**{k: v for k, v in knobs.items() if v is not None})
    options = {"radius": radius, "neighbours": neighbours, "min_cosine": min_cosine,
               "verify_threshold": verify_threshold}
    if paper_rule:
        options.update(neighbours=0)
        probe = verified = False
    report = run(src, out, size=size, keep=keep, model_path=model_path,
                 against=against, dry_run=dry_run, device=device, workers=workers, seed=seed,
                 config=config, max_bucket_share=max_bucket_share, probe=probe,
                 verified=verified, mirrors=mirrors, partitions=partitions,
                 self_fit=self_fit, max_false_share=max_false_share,
                 engine=make_engine(engine, workers, ray_address),
                 **{k: v for k, v in options.items() if v is not None})
    where = "dry run, no shards written" if dry_run else f"shards in {out}"
    click.echo(f"dedup: kept {report['kept']} of {report['images']} images, removed "
               f"{report['removed']} in {report['groups_with_duplicates']} groups "
               f"({where}); report {out / 'dedup_report.json'}")
