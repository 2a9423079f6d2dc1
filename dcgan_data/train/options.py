"""The settings of `train`, `sample` and `fid`: each default, range, choice and help, once.

`TrainOptions` are a run's settings: saved in its checkpoint and config.json under these field
names, so `--resume` needs none of them repeated. `Machine` is where a command runs (not saved).
`SampleOptions` and `FidOptions` are the other two verbs'.

Imports no torch: `dcgan-data train --help` reads these classes.
"""

from __future__ import annotations

from dataclasses import dataclass

from dcgan_data.core.checks import COUNT, POSITIVE, SEED, Range
from dcgan_data.core.errors import InputError
from dcgan_data.core.options import StageOptions, setting

SIZES = (32, 64, 128)  # image sides the DCGAN is built for (3, 4 or 5 stride-2 layers)
EPOCHS = 5.0  # the run's length when neither --steps nor --epochs is given
EVAL_IMAGES = 2_048  # generated images per quality evaluation (train and fid)
BATCH = Range(2, integer=True)  # BatchNorm needs two images

CHECKPOINT_HELP = "A checkpoint file, or a name in RUN/checkpoints."
INCEPTION_HELP = ("inception-2015-12-05.pt (StyleGAN2-ADA's TorchScript Inception): adds FID and "
                  "KID to each evaluation.")


@dataclass(frozen=True)
class Machine(StageOptions):
    """Where a command runs: not part of the run it trains or reads."""

    device: str = setting("auto", "auto: cuda when available, else cpu.",
                          choices=("auto", "cpu", "cuda"))
    threads: int | None = setting(None, "Torch threads on a CPU; on a machine other processes "
                                        "keep busy, 1 or the number of idle cores is faster.",
                                  COUNT, default_text="all cores")


@dataclass(frozen=True)
class TrainRun(Machine):
    """`train`'s own: whether to continue the run in OUT."""

    resume: bool = setting(False, "Continue the run in OUT from checkpoints/last.pt (starts "
                                  "it if absent).", flag="")


@dataclass(frozen=True)
class TrainOptions(StageOptions):
    """A training run's settings, in the order its config.json and checkpoint keep them."""

    size: int | None = setting(None, "Image side; must match the shards.",
                               default_text="the shards' size")
    nz: int = setting(100, "z size.", COUNT)
    ngf: int = setting(128, "G width: its last hidden layer's channels (8 x ngf at 4x4 for "
                            "size 64).", COUNT)
    ndf: int = setting(128, "D width: its first layer's channels.", COUNT)
    batch_size: int = setting(128, "Images per step, per process.", BATCH)
    lr: float = setting(2e-4, "Adam learning rate.", POSITIVE)
    beta1: float = setting(0.5, "Adam beta1.", Range(0, 1, high_open=True))
    z_dist: str = setting("uniform", "z distribution: uniform in [-1, 1] as in the paper, or "
                                     "normal.", choices=("uniform", "normal"))
    steps: int | None = setting(None, "Total steps (overrides --epochs).", COUNT)
    epochs: float | None = setting(None, "Passes over the data.", POSITIVE,
                                   default_text=f"{EPOCHS:g}")
    seed: int = setting(0, "Seeds the initial weights, the batches and z.", SEED)
    amp: bool = setting(False, "bf16 autocast (GPUs; also CPUs with bf16 units).",
                        flag="--no-amp")
    compile: bool = setting(False, "torch.compile G and D.", flag="--no-compile")
    feed: str = setting("auto", "memory: the whole dataset in device memory; stream: batches "
                                "from the memory-mapped shards; auto: memory on CUDA if it "
                                "fits.", choices=("auto", "memory", "stream"))
    log_every: int = setting(10, "Steps per metrics.jsonl line.", COUNT)
    sample_every: int = setting(500, "Steps per samples/step_NNNNNN.png.", COUNT)
    ckpt_every: int = setting(1000, "Steps per checkpoints/last.pt.", COUNT)
    keep_every: int = setting(0, "Also keep checkpoints/step_NNNNNN.pt this often (0: never).",
                              Range(0, integer=True))
    num_samples: int = setting(64, "Images in each sample grid, from one fixed z.", COUNT)
    eval_every: int = setting(1000, "Steps per quality evaluation (hash_fd, hash_kid in "
                                    "metrics.jsonl); also at the last step.", COUNT)
    eval_images: int = setting(EVAL_IMAGES, "Generated images per evaluation.", BATCH)
    eval_model: str | None = setting(None, "Hash model for the quality figure.",
                                     default_text="DATA/hash_model.pt from dedup, else one "
                                                  "trained on DATA once")
    inception_weights: str | None = setting(None, INCEPTION_HELP,
                                            default_text="none, hash_fd only")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.size is not None and self.size not in SIZES:
            raise InputError(f"--size must be one of {', '.join(map(str, SIZES))}, "
                             f"not {self.size}")


@dataclass(frozen=True)
class SampleOptions(StageOptions):
    """`sample`: a grid of G's images, or latent walks."""

    count: int = setting(64, "Images, or latent walks with --interpolate.", COUNT)
    interpolate: bool = setting(False, "One row per walk between two random z (the paper's "
                                       "figure 4).", flag="")
    frames: int = setting(10, "Images per walk with --interpolate.", Range(2, integer=True))
    checkpoint: str | None = setting(None, CHECKPOINT_HELP, default_text="last.pt")
    seed: int = setting(0, "Seeds z.", SEED)


@dataclass(frozen=True)
class FidOptions(StageOptions):
    """`fid`: a run's generator scored against real shards."""

    real: str | None = setting(None, "Shard directory of the real images (normally the run's "
                                     "training data).")
    checkpoint: str | None = setting(None, CHECKPOINT_HELP, default_text="last.pt")
    images: int = setting(EVAL_IMAGES, "Generated images to score.", BATCH)
    hash_model: str | None = setting(None, "Hash model whose codes are the feature space.",
                                     default_text="REAL/hash_model.pt from dedup, else one "
                                                  "trained on REAL once")
    inception_weights: str | None = setting(None, INCEPTION_HELP)
