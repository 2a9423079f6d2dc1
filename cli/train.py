"""`dcgan-data train` and `dcgan-data sample`."""

from __future__ import annotations

import sys

import click

from dcgan_data.core.checks import SAMPLE, TRAIN
from dcgan_data_cli.names import hash_model_option
from dcgan_data_cli.numbers import number_option

THREADS = number_option("--threads", allowed=TRAIN["threads"], default=None,
                        help="Torch threads on a CPU [default: all cores]; on a machine other "
                             "processes keep busy, 1 or the number of idle cores is faster.")
DEVICE = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
                      show_default=True, help="auto: cuda when available, else cpu.")

# Training options default to None: unset ones come from TrainConfig, or from the run's
# checkpoint with --resume, so a resumed run needs no options repeated.
TRAIN_OPTIONS = [
    click.option("--size", type=click.Choice(["32", "64", "128"]), default=None,
                 help="Image side; must match the shards [default: the shards' size]."),
    number_option("--ngf", allowed=TRAIN["ngf"], default=None,
                  help="G width: last hidden layer channels [default: 128; 1024 at 4x4]."),
    number_option("--ndf", allowed=TRAIN["ndf"], default=None,
                  help="D width: first layer channels [default: 128]."),
    number_option("--nz", allowed=TRAIN["nz"], default=None, help="z size [default: 100]."),
    number_option("--batch-size", allowed=TRAIN["batch_size"], default=None,
                  help="Per process [default: 128]."),
    number_option("--lr", allowed=TRAIN["lr"], default=None,
                  help="Adam learning rate [default: 0.0002]."),
    number_option("--beta1", allowed=TRAIN["beta1"], default=None,
                  help="Adam beta1 [default: 0.5]."),
    click.option("--z-dist", type=click.Choice(["uniform", "normal"]), default=None,
                 help="z distribution [default: uniform in [-1, 1]]."),
    number_option("--steps", allowed=TRAIN["steps"], default=None,
                  help="Total steps (overrides --epochs)."),
    number_option("--epochs", allowed=TRAIN["epochs"], default=None,
                  help="Passes over the data [default: 5]."),
    number_option("--seed", allowed=TRAIN["seed"], default=None, help="[default: 0]"),
    click.option("--amp/--no-amp", default=None,
                 help="bf16 autocast (GPUs; also CPUs with bf16 units) [default: off]."),
    click.option("--compile/--no-compile", "compile_", default=None,
                 help="torch.compile G and D [default: off]."),
    click.option("--feed", type=click.Choice(["auto", "memory", "stream"]), default=None,
                 help="memory: whole dataset in device memory; stream: batches from the "
                      "memory-mapped shards [default: auto = memory on CUDA if it fits]."),
    number_option("--log-every", allowed=TRAIN["log_every"], default=None,
                  help="Steps per metrics.jsonl line [default: 10]."),
    number_option("--sample-every", allowed=TRAIN["sample_every"], default=None,
                  help="Steps per samples/step_NNNNNN.png [default: 500]."),
    number_option("--ckpt-every", allowed=TRAIN["ckpt_every"], default=None,
                  help="Steps per checkpoints/last.pt [default: 1000]."),
    number_option("--keep-every", allowed=TRAIN["keep_every"], default=None,
                  help="Also keep checkpoints/step_NNNNNN.pt this often [default: 0 = never]."),
    number_option("--eval-every", allowed=TRAIN["eval_every"], default=None,
                  help="Steps per quality evaluation (hash_fd, hash_kid in metrics.jsonl); "
                       "also at the last step [default: 1000]."),
    number_option("--eval-images", allowed=TRAIN["eval_images"], default=None,
                  help="Generated images per evaluation [default: 2048]."),
    hash_model_option("eval_model", ("--eval-model",), type=click.Path(dir_okay=False),
                      default=None,
                      help="Hash model for the quality figure [default: DATA/hash_model.pt "
                           "from dedup, else one trained on DATA once]."),
    click.option("--inception-weights", type=click.Path(dir_okay=False), default=None,
                 help="inception-2015-12-05.pt (StyleGAN2-ADA's TorchScript Inception): adds "
                      "FID and KID to each evaluation [default: none, hash_fd only]."),
]


def _with_train_options(command):
    for option in reversed(TRAIN_OPTIONS):
        command = option(command)
    return command


@click.command()
@click.argument("data", type=click.Path())
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False),
              help="Run directory to write.")
@click.option("--resume", is_flag=True,
              help="Continue the run in OUT from checkpoints/last.pt (starts it if absent).")
@DEVICE
@THREADS
@_with_train_options
def train(data: str, out: str, resume: bool, device: str, threads: int | None,
          compile_: bool | None, **options) -> None:
    """Train the paper's DCGAN on a shard directory.

    Writes OUT/config.json, metrics.jsonl, samples/step_NNNNNN.png, loss.png and
    checkpoints/last.pt (every --ckpt-every steps, and on Ctrl-C or SIGTERM). For several
    GPUs: torchrun --nproc-per-node N -m dcgan_data train DATA -o OUT.
    """
    from dcgan_data.train.stage import train as run_train

    options["compile"] = compile_
    if options["size"] is not None:
        options["size"] = int(options["size"])
    given = {k: v for k, v in options.items() if v is not None}
    summary = run_train(data, out, device=device, resume=resume, threads=threads, **given)
    last = summary["last"]
    if last is not None:
        quality = (f" hash_fd {last['hash_fd']:.2f} hash_kid {last['hash_kid']:.3f}"
                   if "hash_fd" in last else "")
        quality += f" FID {last['fid']:.2f}" if "fid" in last else ""
        click.echo(f"step {summary['step']}/{summary['total_steps']}: loss_D "
                   f"{last['loss_D']:.3f} loss_G {last['loss_G']:.3f} D(x) {last['D_x']:.2f} "
                   f"D(G(z)) {last['D_G_z']:.2f}{quality}, {last['images_per_s']:.0f} "
                   f"images/s; run: {out}")
    if summary["interrupted"]:
        click.echo(f"interrupted: checkpoint at step {summary['step']} in "
                   f"{summary['checkpoint']}; continue with --resume", err=True)
        sys.exit(128 + summary["interrupted"])


@click.command()
@click.argument("run", type=click.Path())
@number_option("-n", "count", allowed=SAMPLE["n"], default=64, show_default=True,
               help="Images, or latent walks with --interpolate.")
@click.option("-o", "--out", type=click.Path(dir_okay=False), default="grid.png",
              show_default=True, help="PNG to write.")
@click.option("--interpolate", is_flag=True,
              help="One row per walk between two random z (the paper's figure 4).")
@number_option("--frames", allowed=SAMPLE["frames"], default=10, show_default=True,
               help="Images per walk with --interpolate.")
@click.option("--checkpoint", default=None,
              help="A checkpoint file, or a name in RUN/checkpoints [default: last.pt].")
@number_option("--seed", allowed=SAMPLE["seed"], default=0, show_default=True)
@DEVICE
@THREADS
def sample(run: str, count: int, out: str, interpolate: bool, frames: int,
           checkpoint: str | None, seed: int, device: str, threads: int | None) -> None:
    """Draw images from a trained run's generator into one PNG grid."""
    from dcgan_data.train.sampling import write_grid

    _set_threads(threads)
    summary = write_grid(run, out, device=device, count=count, interpolate=interpolate,
                         frames=frames, seed=seed, checkpoint=checkpoint)
    click.echo(f"wrote {summary['images']} images of {summary['size']} px to {out} "
               f"(from {summary['checkpoint']})")


@click.command()
@click.argument("run", type=click.Path())
@click.option("--real", required=True, type=click.Path(),
              help="Shard directory of the real images (normally the run's training data).")
@click.option("--checkpoint", default=None,
              help="A checkpoint file, or a name in RUN/checkpoints [default: last.pt].")
@number_option("--images", allowed=SAMPLE["images"], default=None,
               help="Generated images to score [default: 2048].")
@hash_model_option("hash_model", type=click.Path(dir_okay=False), default=None,
                   help="Hash model whose codes are the feature space [default: REAL/hash_model.pt "
                   "from dedup, else one trained on REAL once].")
@click.option("--inception-weights", type=click.Path(dir_okay=False), default=None,
              help="inception-2015-12-05.pt (StyleGAN2-ADA's TorchScript Inception): adds "
                   "FID and KID.")
@DEVICE
@THREADS
def fid(run: str, real: str, checkpoint: str | None, images: int | None,
        hash_model: str | None, inception_weights: str | None, device: str,
        threads: int | None) -> None:
    """Score a run's generator against real shards: hash_fd and hash_kid, and with
    --inception-weights FID and KID.

    hash_fd and hash_kid are FID's and KID's formulas in the dedup hash model's 128-unit code
    space (no download needed), not FID with Inception features: compare runs on the same
    data with them, not with published FIDs. Writes RUN/quality_report.json.
    """
    from dcgan_data.train.quality import evaluate_run

    _set_threads(threads)
    report = evaluate_run(run, device=device, real=real, checkpoint=checkpoint,
                          hash_model=hash_model, inception_weights=inception_weights,
                          **({"images": images} if images is not None else {}))
    inception = (f" FID {report['fid']:.3f} KID {report['kid']:.4f}" if "fid" in report
                 else "")
    click.echo(f"step {report['step']}: hash_fd {report['hash_fd']:.3f} hash_kid "
               f"{report['hash_kid']:.4f}{inception} ({report['eval_images']} generated vs "
               f"{report['real_images']} real images; {run}/quality_report.json)")


def _set_threads(threads: int | None) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
