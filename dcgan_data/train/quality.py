"""A quality figure for every run that needs no download: distances in the hash model's space.

FID compares the Inception-v3 features of generated and real images; its weights come from the
internet on first use, which many training machines cannot reach. The stand-in here uses a
feature space this project already owns: the 128 real-valued code units of the dedup hash
model (the autoencoder of the paper's de-duplication, trained on the same data), read before
their threshold, on 32x32 crops as the dedup sees them. Each unit is scaled by the real images'
standard deviation, then:

  hash_fd   the Frechet distance between Gaussians fitted to real and generated codes
            (FID's formula in this space: 0 for the data itself, larger is worse);
  hash_kid  the kernel inception distance's estimator in this space: an unbiased MMD^2 with
            the kernel (x.y / 128 + 1)^3, averaged over subsets (near 0 for the data itself;
            unbiased, so fair across sample sizes).

The codes see colour, layout and coarse texture at 32x32, not objects: the figures rank runs
on the same data and show a run learning or collapsing; they are not comparable with FID.

With Inception weights on disk (`inception_weights`, the TorchScript file that StyleGAN2-ADA
and clean-fid download) the evaluation adds the real thing:

  fid, kid  FID and KID with Inception-v3's 2048 pool features, the network resizing to 299 px
            inside as the original TensorFlow FID code does (clean-fid's "legacy_tensorflow"
            mode), so the figures are the ones papers report, up to the number of images.

The real side is computed once per dataset and feature space, and cached beside the shards
(quality_stats.npz, inception_stats.npz), keyed by the manifest's checksums and the model
file's, so an evaluation costs only the generated side. When the shard directory holds no
hash model (dedup writes one, hash_model.pt), one is trained on the shards once and cached
there as quality_model.pt.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dcgan_data.core.devices import resolve_device
from dcgan_data.core.errors import InputError
from dcgan_data.core.files import atomic_path, write_json
from dcgan_data.core.shards import ShardSet, sha256_file
from dcgan_data.hashmodel import hashing
from dcgan_data.train.checkpoint import load_checkpoint
from dcgan_data.train.feed import data_checksum
from dcgan_data.train.model import Generator, draw_z, generate
from dcgan_data.train.options import EVAL_IMAGES, FidOptions
from dcgan_data.train.sampling import checkpoint_path, load_generator

log = logging.getLogger(__name__)

DEDUP_MODEL = "hash_model.pt"  # dedup's model file (dedup.MODEL), beside its output shards
OWN_MODEL = "quality_model.pt"
OWN_MODEL_STEPS = (200, 1000)  # a quarter of dedup's budget: features, not exact duplicates
STATS = "quality_stats.npz"
INCEPTION_STATS = "inception_stats.npz"
INCEPTION_FILE = "inception-2015-12-05.pt"
INCEPTION_URL = ("https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/"
                 + INCEPTION_FILE)
INCEPTION_FEATURES = 2048
INCEPTION_BATCH = 64  # images per forward pass: each is resized to 299 px inside
REAL_IMAGES = 10_000  # real images in the cached statistics (all of a smaller set)
KID_FEATURES = 2_000  # of which kept for KID
KID_SUBSETS, KID_SUBSET = 10, 1_000


@dataclass
class RealStats:
    mean: np.ndarray  # (128,) in scaled units
    cov: np.ndarray  # (128, 128)
    scale: np.ndarray  # (128,) the real codes' root mean variance: one unit for all features
    features: np.ndarray  # (<= KID_FEATURES, 128) scaled, for KID
    count: int


class CodeSpace:
    """The hash model's 128 pre-threshold codes: gain * (pixels @ weight) - threshold."""

    stats_file = STATS
    standardise = True  # the units' scales are arbitrary: one common unit, the real codes' std

    def __init__(self, path: str | os.PathLike, device: str = "cpu"):
        model, _ = hashing.load_model(path, device)
        self.hasher = hashing.Hasher(model, device)
        self.path = Path(path)
        self.checksum = sha256_file(self.path)

    @torch.no_grad()
    def codes(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 images -> (N, 128) float64 codes."""
        crops = hashing.to_hash_crops(images)
        weight, threshold = self.hasher.weight, self.hasher.threshold
        out = np.empty((len(crops), weight.shape[1]), np.float64)
        for start in range(0, len(crops), 4096):
            pixels = torch.from_numpy(crops[start : start + 4096]).to(weight.device).float()
            gain = hashing.level_gain(pixels, self.hasher.config)
            code = gain * (pixels @ weight) - threshold
            out[start : start + len(code)] = code.double().cpu().numpy()
        return out


class InceptionSpace:
    """Inception-v3's 2048 pool features from the TorchScript file of StyleGAN2-ADA's metrics
    (also clean-fid's): called on uint8 NCHW images of any size with return_features=True."""

    stats_file = INCEPTION_STATS
    standardise = False  # FID's own space, as published

    def __init__(self, path: str | os.PathLike, device: str = "cpu"):
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"--inception-weights {path}: no such file; download {INCEPTION_URL}"
                             " on a machine with internet and pass its path")
        self.device = torch.device(device)
        try:
            self.net = torch.jit.load(str(self.path), map_location=self.device).eval()
            probe = self.codes(np.zeros((1, 32, 32, 3), np.uint8))
        except (RuntimeError, ValueError, OSError) as exc:
            raise InputError(f"--inception-weights {path}: not the TorchScript Inception file "
                             f"{INCEPTION_FILE} ({str(exc).splitlines()[0][:120]})") from None
        if probe.shape != (1, INCEPTION_FEATURES):
            raise InputError(f"--inception-weights {path}: gives features of shape "
                             f"{tuple(probe.shape)}, not (1, {INCEPTION_FEATURES}); is it "
                             f"{INCEPTION_FILE}?")
        self.checksum = sha256_file(self.path)

    @torch.no_grad()
    def codes(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 images -> (N, 2048) float64 pool features."""
        out = []
        for start in range(0, len(images), INCEPTION_BATCH):
            batch = torch.from_numpy(np.ascontiguousarray(images[start : start + INCEPTION_BATCH]))
            batch = batch.permute(0, 3, 1, 2).to(self.device)
            out.append(self.net(batch, return_features=True).double().cpu().numpy())
        return np.concatenate(out).reshape(len(images), -1)


def code_space(shards: ShardSet, model: str | os.PathLike | None = None,
               device: str = "cpu") -> CodeSpace:
    """The given hash model; else the one dedup left beside the shards; else one trained on
    the shards now and cached beside them."""
    if model is not None:
        return CodeSpace(model, device)
    for name in (DEDUP_MODEL, OWN_MODEL):
        if (shards.path / name).is_file():
            return CodeSpace(shards.path / name, device)
    log.info("%s: no hash model beside the shards; training one for the quality figure",
             shards.path)
    config = hashing.HashConfig(min_steps=OWN_MODEL_STEPS[0], max_steps=OWN_MODEL_STEPS[1])
    crops = hashing.sample_crops(shards, config.max_train_images, np.random.default_rng(0))
    trained, _ = hashing.train_hash_model(crops, config, device)
    path = _writable(shards.path / OWN_MODEL)
    hashing.save_model(trained, path, {"trained_for": "quality figure"})
    return CodeSpace(path, device)


def _writable(path: Path) -> Path:
    """`path`, or a user cache file when the shard directory is read-only."""
    if os.access(path.parent, os.W_OK):
        return path
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dcgan-data"
    cache.mkdir(parents=True, exist_ok=True)
    return cache / f"{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]}-{path.name}"


def real_stats(shards: ShardSet, space: CodeSpace | InceptionSpace) -> RealStats:
    """The real images' statistics in `space`, from the cache when its keys match, else
    computed and cached (REAL_IMAGES images at most, an even spread over the set)."""
    key = f"{data_checksum(shards)}:{space.checksum}"
    path = _writable(shards.path / space.stats_file)
    if path.is_file():
        with np.load(path) as cached:
            if str(cached["key"]) == key:
                return RealStats(cached["mean"], cached["cov"], cached["scale"],
                                 cached["features"], int(cached["count"]))
    count = min(len(shards), REAL_IMAGES)
    rows = np.linspace(0, len(shards) - 1, count).round().astype(np.int64)
    codes = np.concatenate([space.codes(shards.load(rows[i : i + 4096]))
                            for i in range(0, count, 4096)])
    unit = max(np.sqrt(codes.var(0).mean()), 1e-6) if space.standardise else 1.0
    scale = np.full(codes.shape[1], unit)
    scaled = codes / scale
    keep = np.random.default_rng(0).permutation(count)[:KID_FEATURES]
    stats = RealStats(scaled.mean(0), np.cov(scaled, rowvar=False), scale, scaled[keep], count)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, key=key, mean=stats.mean, cov=stats.cov, scale=stats.scale,
                 features=stats.features, count=count)
    return stats


def frechet_distance(mean1: np.ndarray, cov1: np.ndarray, mean2: np.ndarray,
                     cov2: np.ndarray) -> float:
    """|m1 - m2|^2 + tr(C1 + C2 - 2 (C1 C2)^1/2), with the trace of the root taken as the sum
    of the square roots of the eigenvalues of C1^1/2 C2 C1^1/2 (symmetric, so stable)."""
    values, vectors = np.linalg.eigh(cov1)
    root1 = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    middle = np.linalg.eigvalsh(root1 @ cov2 @ root1)
    cross = np.sqrt(np.clip(middle, 0, None)).sum()
    return float(((mean1 - mean2) ** 2).sum() + np.trace(cov1) + np.trace(cov2) - 2 * cross)


def kernel_distance(real: np.ndarray, fake: np.ndarray, subsets: int = KID_SUBSETS,
                    subset: int = KID_SUBSET, seed: int = 0) -> float:
    """Unbiased MMD^2 with the kernel (x.y / d + 1)^3, averaged over random subsets."""
    rng = np.random.default_rng(seed)
    m = min(subset, len(real), len(fake))
    dim = real.shape[1]

    def kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        k = a @ b.T / dim + 1
        return k * k * k  # numpy's ** 3 goes through pow(), many times slower

    total = 0.0
    for _ in range(subsets):
        x = real[rng.choice(len(real), m, replace=False)]
        y = fake[rng.choice(len(fake), m, replace=False)]
        kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
        off = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        total += off - 2 * kxy.mean()
    return float(total / subsets)


class Evaluator:
    """hash_fd and hash_kid (and fid and kid, given an InceptionSpace) of a generator against
    one dataset's cached real statistics."""

    def __init__(self, shards: ShardSet, model: str | os.PathLike | None = None,
                 images: int = EVAL_IMAGES, device: str = "cpu",
                 inception: InceptionSpace | None = None):
        if images < 2:
            raise InputError("--eval-images must be at least 2")
        self.space = code_space(shards, model, device)
        self.real = real_stats(shards, self.space)
        # (metric prefix, feature space, its real statistics)
        self.spaces: list[tuple[str, CodeSpace | InceptionSpace, RealStats]] = [
            ("hash_", self.space, self.real)]
        if inception is not None:
            self.spaces.append(("", inception, real_stats(shards, inception)))
        self.images = images

    def scores(self, images: np.ndarray) -> dict[str, float]:
        """The figures for a set of (N, H, W, 3) uint8 images (generated, or any others)."""
        figures = {}
        for prefix, space, real in self.spaces:
            fake = space.codes(images) / real.scale
            figures[f"{prefix}fd" if prefix else "fid"] = frechet_distance(
                real.mean, real.cov, fake.mean(0), np.cov(fake, rowvar=False))
            figures[f"{prefix}kid"] = kernel_distance(real.features, fake)
        return figures

    def __call__(self, g: Generator, z_dist: str, seed: int = 0) -> dict[str, float]:
        """The figures for G's images from a fixed z (the same at every evaluation)."""
        z = draw_z(self.images, g.nz, z_dist, torch.Generator().manual_seed(seed),
                   torch.device("cpu"))
        return {**self.scores(generate(g, z)), "eval_images": self.images}


def evaluate_run(run: str | os.PathLike, options: FidOptions | None = None,
                 device: str = "auto", **settings: Any) -> dict:
    """hash_fd and hash_kid (and fid and kid with `inception_weights`) of a run's checkpoint
    against the shards `real` (the settings: `options`, changed by any FidOptions fields given
    as keywords); the figures are also written to RUN/quality_report.json."""
    options = (options or FidOptions()).replace(**settings)
    if options.real is None:
        raise InputError("--real: give the shard directory of the real images")
    device_ = resolve_device(device)
    inception = (InceptionSpace(options.inception_weights, device_)
                 if options.inception_weights else None)
    path = checkpoint_path(run, options.checkpoint)
    g, cfg = load_generator(path, device_)
    shards = ShardSet(options.real)
    if shards.shape[0] != cfg["size"]:
        raise InputError(f"{options.real} holds {shards.shape[0]} px images, the run generates "
                         f"{cfg['size']} px ones")
    evaluator = Evaluator(shards, options.hash_model, options.images, inception=inception)
    report = {"checkpoint": str(path), "step": load_checkpoint(path)["step"],
              "real": str(options.real), "real_images": evaluator.real.count,
              "hash_model": str(evaluator.space.path),
              **({"inception_weights": str(inception.path)} if inception else {}),
              **evaluator(g, cfg["z_dist"], cfg.get("seed", 0))}
    write_json(Path(run) / "quality_report.json", report)
    return report
