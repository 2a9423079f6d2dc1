"""The DCGAN paper's semantic hash: a 3072-128-3072 denoising, dropout-regularised ReLU
autoencoder on 32x32 crops, whose 128 code units, thresholded at zero, are a 16-byte hash.

Training reads a bounded uint8 sample of crops from the memory-mapped shards (never a float
copy of the dataset); hashing goes shard by shard, so time and memory are linear in the number
of images. Three choices beyond the paper keep the code healthy (a naive ReLU autoencoder
often ends with every unit dead, so that every image gets the same hash):
  * inputs are normalised per pixel (mean/std of the training sample), and the 128
    pre-activations go through a batch norm without scale/shift, so each unit is centred
    on the data and fires for about half of the images: no dead units, balanced bits.
    At inference the norm is a fixed per-unit affine map, so the hash is still the sign of
    one linear layer (3072 -> 128).
  * each crop is first divided by its mean level: a copy 10% brighter is the same input.
    On near duplicates of real photos this took precision at equal hashes from 0.87 to 0.99.
  * Gaussian noise is added to the pre-activations while training (as in Salakhutdinov and
    Hinton's semantic hashing): the decoder can only use what survives it, which pushes
    units away from zero. A little (0.5) helps; much more merges distinct images.
The denoising corruption is the kind of edit a near duplicate carries (a sub-pixel shift, a
slight zoom, a brightness change, pixel noise), so the code learns to ignore it as far as a
linear encoder can. Shifts and trims still flip bits; the probe hashes (below) catch those.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dcgan_data.core.errors import DcganDataError, InputError
from dcgan_data.core.files import atomic_path, progress
from dcgan_data.core.images import LUMA, downsample_2x, resize_square
from dcgan_data.core.shards import ShardSet
from dcgan_data.hashmodel.options import HashConfig

FORMAT = "dcgan-data-hash-model"
VERSION = 1
SIDE = 32  # the paper hashes 32x32 crops
DIM = SIDE * SIDE * 3
HASH_BYTES = 16
CHUNK = 8192  # rows hashed per step: bounded memory whatever the shard size


class HashAutoencoder(nn.Module):
    """3072 -> 128 ReLU code -> 3072 linear reconstruction, on per-pixel normalised input."""

    def __init__(self, config: HashConfig):
        super().__init__()
        self.config = config
        self.register_buffer("pixel_mean", torch.zeros(DIM))
        self.register_buffer("pixel_std", torch.ones(DIM))
        self.encoder = nn.Linear(DIM, config.bits)
        self.norm = nn.BatchNorm1d(config.bits, affine=False, momentum=0.01)
        self.decoder = nn.Linear(config.bits, DIM)
        self.dropout = nn.Dropout(config.dropout)

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3072) pixel values 0..255 -> zero mean, unit variance per pixel."""
        return level(pixels, self.config).sub_(self.pixel_mean).div_(self.pixel_std)

    def preactivation(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.encoder(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.preactivation(x)
        if self.training and self.config.code_noise > 0:
            z = z + self.config.code_noise * torch.randn_like(z)
        return self.decoder(self.dropout(F.relu(z)))


def level(pixels: torch.Tensor, config: HashConfig) -> torch.Tensor:
    """Brightness-normalised pixels: a copy 10% brighter is the same input (bar clipping).
    Colour and contrast are kept, so flat colours of different hue still differ."""
    return pixels * level_gain(pixels, config)


def level_gain(pixels: torch.Tensor, config: HashConfig) -> torch.Tensor | float:
    if not config.level_power:
        return 1.0
    return (128.0 / (pixels.mean(dim=1, keepdim=True) + 8.0)) ** config.level_power


# --- crops ---------------------------------------------------------------------------------


def to_hash_crops(rows: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 shard rows -> (N, 3072) uint8 32x32 crops.

    64x64 rows are 2x2-mean pooled; other square sizes are resized.
    """
    rows = np.asarray(rows)
    if rows.shape[1:3] == (2 * SIDE, 2 * SIDE):
        small = downsample_2x(rows)
    elif rows.shape[1:3] == (SIDE, SIDE):
        small = np.array(rows)  # a copy: torch warns on a read-only map of the shards
    else:
        small = np.stack([resize_square(r, SIDE) for r in rows]) if len(rows) else \
            np.zeros((0, SIDE, SIDE, 3), np.uint8)
    return np.ascontiguousarray(small, dtype=np.uint8).reshape(len(rows), DIM)


def iter_crops(shards: ShardSet, chunk: int = CHUNK) -> Iterator[np.ndarray]:
    """Every row's 32x32 crop, in row order, a chunk at a time."""
    for _, array in shards.iter_shards():
        for start in range(0, len(array), chunk):
            yield to_hash_crops(array[start : start + chunk])


def scan_units(shards: ShardSet) -> list[tuple[int, int, int]]:
    """Every row as units (shard, lo, hi) of up to CHUNK rows of one shard, in row order: what
    a pass that hashes the rows on the unit runner hands out."""
    return [(s, lo, min(lo + CHUNK, entry["rows"])) for s, entry in enumerate(shards.shards)
            for lo in range(0, entry["rows"], CHUNK)]


def sample_crops(shards: ShardSet, n: int, rng: np.random.Generator) -> np.ndarray:
    """Up to n crops drawn without replacement, read in row order (kind to the page cache)."""
    total = len(shards)
    if total <= n:
        return np.concatenate(list(iter_crops(shards)))
    indices = np.sort(rng.choice(total, n, replace=False))
    out = np.empty((n, DIM), np.uint8)
    for start in range(0, n, CHUNK):
        part = indices[start : start + CHUNK]
        out[start : start + len(part)] = to_hash_crops(shards.load(part))
    return out


# --- training ------------------------------------------------------------------------------


def _pixel_stats(crops: np.ndarray, config: HashConfig) -> tuple[np.ndarray, np.ndarray]:
    total = np.zeros(DIM, np.float64)
    squares = np.zeros(DIM, np.float64)
    for start in range(0, len(crops), CHUNK):
        # float32 within a chunk (exact enough for 8192 rows), float64 across chunks
        part = level(torch.from_numpy(crops[start : start + CHUNK]).float(), config)
        total += part.sum(dim=0).double().numpy()
        squares += part.square().sum(dim=0).double().numpy()
    mean = total / len(crops)
    std = np.sqrt(np.maximum(squares / len(crops) - mean * mean, 0.0))
    return mean, std


def warp(images: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """(N, 3, 32, 32) images resampled on a grid scaled by `scale` (N,) about the centre
    (> 1 shows more of the scene) and moved by `shift` (N, 2) pixels (x, y); edges repeat."""
    theta = torch.zeros(len(images), 2, 3, device=images.device)
    theta[:, 0, 0] = scale
    theta[:, 1, 1] = scale
    theta[:, :, 2] = shift * (2 / SIDE)  # affine_grid units: 2 = the full side
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, padding_mode="border", align_corners=False)


_CENTRED = np.arange(SIDE, dtype=np.float32) - (SIDE - 1) / 2
_LUMA = torch.tensor(LUMA)


def warp_crops(crops: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """`warp` for (N, 3072) uint8 crops, in uint8, by one OpenCV remap of the crops stacked
    into a single tall image (one call, not one per crop): each source coordinate is clamped
    inside its own crop, so edges repeat and neighbouring crops never bleed in."""
    n = len(crops)
    maps = []
    for axis, centred in ((0, _CENTRED[None, None, :]), (1, _CENTRED[None, :, None])):
        at = scale[:, None, None] * centred + (SIDE - 1) / 2 + shift[:, axis, None, None]
        at = np.clip(at, 0, SIDE - 1)
        if axis == 1:
            at = at + SIDE * np.arange(n)[:, None, None]  # down to this crop's place
        maps.append(np.broadcast_to(at, (n, SIDE, SIDE)).reshape(n * SIDE, SIDE)
                    .astype(np.float32))
    return cv2.remap(crops.reshape(n * SIDE, SIDE, 3), maps[0], maps[1],
                     cv2.INTER_LINEAR).reshape(n, DIM)


def corrupt(crops: np.ndarray, config: HashConfig, rng: np.random.Generator) -> torch.Tensor:
    """The denoising corruption of (N, 3072) uint8 crops: random near-duplicate edits (a
    sub-pixel shift and slight zoom, then saturation, contrast and brightness changes,
    sometimes grey). Returns (N, 3072) float pixel values."""
    n = len(crops)
    scale = 1 - config.zoom * np.abs(rng.uniform(-1, 1, n))
    shift = rng.uniform(-1, 1, (n, 2)) * config.shift
    moved = torch.from_numpy(warp_crops(crops, scale, shift)).view(n, SIDE * SIDE, 3).float()

    def factor(spread: float) -> torch.Tensor:
        return torch.from_numpy(1 + spread * rng.uniform(-1, 1, n)).float()[:, None, None]

    # Colour, per crop: saturation s about the grey level g (s = 0: grey), contrast c about
    # the crop's mean level m, a gain a; together a (c (s p + (1 - s) g) + (1 - c) m).
    saturation = factor(config.saturation).clamp(min=0)
    saturation = saturation * torch.from_numpy(rng.random(n) >= config.grayscale)[:, None, None]
    contrast, gain = factor(config.contrast), factor(config.gain)
    grey = (moved @ _LUMA)[:, :, None]
    level = saturation * moved.mean(dim=(1, 2), keepdim=True) \
        + (1 - saturation) * grey.mean(dim=1, keepdim=True)
    coloured = torch.addcmul(gain * (contrast * (1 - saturation) * grey + (1 - contrast) * level),
                             gain * contrast * saturation, moved)
    return coloured.clamp_(0, 255).view(n, DIM)


def train_hash_model(
    crops: np.ndarray,
    config: HashConfig,
    device: str = "cpu",
    seed: int = 0,
    on_step: Callable[[int, float], None] | None = None,
) -> tuple[HashAutoencoder, dict[str, Any]]:
    """Train a hash model on (N, 3072) uint8 crops. Returns the model (eval mode) and stats."""
    if len(crops) < 2:
        raise InputError(f"cannot train a hash model on {len(crops)} image(s); "
                         "pass --hash-model with a model trained on a larger set")
    if not (crops != crops[0]).any():
        raise InputError(f"all {len(crops)} training images are identical: there is nothing "
                         "to learn a hash from (and nothing to de-duplicate but one image)")
    mean, std = _pixel_stats(crops, config)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    model = HashAutoencoder(config)
    model.pixel_mean.copy_(torch.from_numpy(mean).float())
    # a pixel that never varies would divide by ~0; floor the std at one grey level
    model.pixel_std.copy_(torch.from_numpy(np.maximum(std, 1.0)).float())
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)
    batch = min(config.batch_size, len(crops))
    steps = int(math.ceil(config.epochs * len(crops) / batch))
    steps = max(config.min_steps, min(config.max_steps, steps))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=steps,
                                                   pct_start=0.1)
    start = time.perf_counter()
    losses = []
    make_batch = _batch_maker(crops, batch, steps, model, rng, generator, device)
    for step in progress(range(steps), desc="train hash", unit="step"):
        target, noisy = make_batch(step)
        loss = F.mse_loss(model(noisy), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(step, losses[-1])
    model.eval()
    tail = losses[-max(1, steps // 10) :]
    stats = {"train_images": len(crops), "steps": steps, "batch_size": batch,
             "seconds": round(time.perf_counter() - start, 2),
             "first_loss": round(losses[0], 4), "final_loss": round(float(np.mean(tail)), 4)}
    return model, stats


NOISE_BANK_BATCHES = 4  # Gaussian draws kept for the pixel noise, in batches


def _batch_maker(crops: np.ndarray, batch: int, steps: int, model: HashAutoencoder,
                 rng: np.random.Generator, generator: torch.Generator, device: str
                 ) -> Callable[[int], tuple[torch.Tensor, torch.Tensor]]:
    """make(step) -> (clean target, corrupted input) of that step, both normalised. The
    crops of every step are drawn now (a fresh permutation each epoch, the last partial
    batch dropped); make must be called for steps in order, as it draws the edits from rng."""
    per_epoch = len(crops) // batch
    order = np.concatenate([rng.permutation(len(crops))[: per_epoch * batch]
                            for _ in range(math.ceil(steps / per_epoch))])
    # Fresh normals for every pixel of every step cost more than the rest of the corruption:
    # the pixel noise is read from one bank of draws at a random offset instead.
    bank = torch.randn(NOISE_BANK_BATCHES * batch * DIM, generator=generator).to(device)

    def make(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        picked = crops[np.sort(order[step * batch : (step + 1) * batch])]
        target = model.normalise(torch.from_numpy(picked).to(device).float())
        noisy = model.normalise(corrupt(picked, model.config, rng).to(device))
        at = int(rng.integers(0, len(bank) - batch * DIM + 1))
        return target, torch.add(noisy, bank[at : at + batch * DIM].view(batch, DIM),
                                 alpha=model.config.pixel_noise)

    return make


# --- hashing -------------------------------------------------------------------------------
# Probes. A copy shifted by a few pixels or trimmed by a few percent moves the 32x32 input by
# a fraction of a pixel, and that flips some of the 128 bits: equal hashes alone miss most
# such copies. The code is linear before its threshold, so the pre-activations of slightly
# moved versions of an image are, to first order, its own plus multiples of three more
# projections (its derivatives along x, y and zoom). Each image thus gets one probe hash per
# small move below, for one extra 3072 x 384 product, and images that share any probe hash
# are grouped (dedup.find_groups). An image's own hash is its probe (0, 0, 0).
PROBE_SHIFTS = (-0.5, -0.25, 0.0, 0.25, 0.5)  # in 32x32 pixels, along each axis
PROBE_ZOOM = 0.085  # a 4% trim of each border, blown back up to full size
PROBES = [(dx, dy, 0.0) for dy in PROBE_SHIFTS for dx in PROBE_SHIFTS] + \
    [(0.0, 0.0, -PROBE_ZOOM), (0.0, 0.0, PROBE_ZOOM)]  # (dx, dy, zoom)


class Hasher:
    """A hash model folded into plain tensors: bit k of a crop is set where
    level * (pixels @ weight[:, k]) > threshold[k]. (The pixel norm is folded into the
    weight; the batch norm divides by a positive number, so only its running mean moves the
    threshold.) With `probes`, also the derivatives that give the probe hashes."""

    @torch.no_grad()
    def __init__(self, model: HashAutoencoder, device: str = "cpu", probes: bool = False):
        model = model.to(device).eval()
        self.config = model.config
        self.weight = (model.encoder.weight / model.pixel_std).t().contiguous()  # (3072, bits)
        self.threshold = (self.weight.t() @ model.pixel_mean - model.encoder.bias
                          + model.norm.running_mean)
        self.slopes = self._slopes() if probes else None
        # the moved projection of probe m is coefficients[m] @ [own, d/dx, d/dy, d/zoom]
        self.coefficients = torch.tensor([(1.0, *move) for move in PROBES], device=device)

    def _slopes(self) -> torch.Tensor:
        """(3072, 3 * bits): the folded encoder's derivatives along x, y (per pixel) and zoom,
        as central differences over half a pixel and over the probe zoom."""

        def slope(step: float, move: Callable[[float], tuple[float, float, float]]
                  ) -> torch.Tensor:
            ahead = _moved_weight(self.weight, *move(step))
            behind = _moved_weight(self.weight, *move(-step))
            return (ahead - behind) / (2 * step)

        return torch.cat([slope(0.5, lambda s: (s, 0.0, 0.0)),
                          slope(0.5, lambda s: (0.0, s, 0.0)),
                          slope(PROBE_ZOOM, lambda s: (0.0, 0.0, s))], dim=1)

    @torch.no_grad()
    def __call__(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(N, 3072) uint8 crops -> (N, 16) uint8 hashes and, with probes, the
        (N, len(PROBES), 16) probe hashes (else None)."""
        bits = self.weight.shape[1]
        out = np.empty((len(crops), bits // 8), np.uint8)
        probes = None if self.slopes is None else \
            np.empty((len(crops), len(PROBES), bits // 8), np.uint8)
        for start in range(0, len(crops), CHUNK):
            pixels = torch.from_numpy(crops[start : start + CHUNK]).to(self.weight.device)
            pixels = pixels.float()
            projected = pixels @ self.weight
            gain = level_gain(pixels, self.config)
            code = (projected * gain > self.threshold).cpu().numpy()
            out[start : start + len(code)] = np.packbits(code, axis=1)
            if probes is not None:
                self._probe(pixels, projected, gain, probes[start : start + len(code)])
        return out, probes

    def _probe(self, pixels: torch.Tensor, projected: torch.Tensor, gain: torch.Tensor | float,
               out: np.ndarray) -> None:
        bits = projected.shape[1]
        along = torch.cat([projected, pixels @ self.slopes], 1).view(len(pixels), 4, bits)
        # level * moved > threshold  <=>  moved > threshold / level  (level > 0)
        limit = (self.threshold / torch.as_tensor(gain)).expand(len(pixels), bits)
        for start in range(0, len(pixels), 256):  # 256 x 27 x 128 floats stay in the cache
            moved = torch.matmul(self.coefficients, along[start : start + 256])
            code = moved > limit[start : start + 256, None, :]
            out[start : start + len(code)] = np.packbits(code.cpu().numpy(), axis=2)


def _moved_weight(weight: torch.Tensor, dx: float, dy: float, zoom: float) -> torch.Tensor:
    """(3072, bits) weights that see a crop as `warp` moves it: crop @ result equals
    warp(crop) @ weight. Column k is the adjoint of the (linear) warp applied to column k,
    i.e. the gradient of <warp(x), w_k> with respect to x, which autograd gives directly."""
    bits, device = weight.shape[1], weight.device
    images = weight.t().reshape(bits, SIDE, SIDE, 3).permute(0, 3, 1, 2)
    x = torch.zeros_like(images, requires_grad=True)
    with torch.enable_grad():
        moved = warp(x, torch.full((bits,), 1 + zoom, device=device),
                     torch.tensor([[dx, dy]], device=device).expand(bits, 2))
        (moved * images).sum().backward()
    return x.grad.permute(0, 2, 3, 1).reshape(bits, DIM).t()


def hash_crops(model: HashAutoencoder, crops: np.ndarray, device: str = "cpu") -> np.ndarray:
    """(N, 3072) uint8 crops -> (N, 16) uint8 hashes: bit k set where code unit k is > 0."""
    return Hasher(model, device)(crops)[0]


def hash_shards(model: HashAutoencoder, shards: ShardSet, device: str = "cpu",
                desc: str = "hash", probes: bool = False
                ) -> tuple[np.ndarray, np.ndarray | None]:
    """Hashes of every row of `shards`, aligned with their row order (N, 16) uint8, and with
    `probes` the (N, len(PROBES), 16) probe hashes (else None)."""
    hasher = Hasher(model, device, probes)
    bits = model.config.bits // 8
    out = np.empty((len(shards), bits), np.uint8)
    moved = np.empty((len(shards), len(PROBES), bits), np.uint8) if probes else None
    row = 0
    with progress(total=len(shards), desc=desc) as bar:
        for crops in iter_crops(shards):
            hashes, probe_hashes = hasher(crops)
            out[row : row + len(crops)] = hashes
            if moved is not None:
                moved[row : row + len(crops)] = probe_hashes
            row += len(crops)
            bar.update(len(crops))
    return out, moved


# --- degenerate codes ----------------------------------------------------------------------


def popcount(codes: np.ndarray) -> np.ndarray:
    """Set bits per row of (N, 16) uint8 codes (or of their XOR)."""
    return np.bitwise_count(codes).sum(axis=1, dtype=np.int64)


def code_stats(hashes: np.ndarray) -> dict[str, Any]:
    """Bit usage and bucket sizes of (N, 16) hashes."""
    n = len(hashes)
    bits = hashes.shape[1] * 8
    ones = np.zeros(bits, np.int64)
    for start in range(0, n, 1 << 16):
        ones += np.unpackbits(hashes[start : start + (1 << 16)], axis=1).sum(0, dtype=np.int64)
    rate = ones / max(n, 1)
    _, counts = np.unique(hashes.view(np.dtype((np.void, hashes.shape[1]))).ravel(),
                          return_counts=True) if n else (None, np.zeros(1, np.int64))
    return {
        "images": n,
        "distinct_hashes": int(len(counts)) if n else 0,
        "largest_bucket": int(counts.max()),
        "largest_bucket_share": round(float(counts.max()) / max(n, 1), 6),
        "dead_bits": int((ones == 0).sum()),
        "constant_bits": int((ones == n).sum()),
        "bit_rate_min": round(float(rate.min()), 4),
        "bit_rate_mean": round(float(rate.mean()), 4),
        "bit_rate_max": round(float(rate.max()), 4),
        "bits_per_hash_mean": round(float(popcount(hashes).mean()) if n else 0.0, 2),
        "bit_rates": [round(float(r), 4) for r in rate],
    }


def check_codes(stats: dict[str, Any], min_varying_bits: int = 32,
                max_bucket_share: float = 0.5) -> None:
    """Refuse a degenerate hash (dead or constant bits, one bucket holding most images)
    before it is used to delete anything."""
    n = stats["images"]
    bits = len(stats["bit_rates"])
    varying = bits - stats["dead_bits"] - stats["constant_bits"]
    if n >= 2 and varying < min_varying_bits:
        raise DcganDataError(
            f"degenerate hash: only {varying} of {bits} bits vary over {n} images "
            f"({stats['dead_bits']} never set, {stats['constant_bits']} always set); the hash "
            "model did not learn a useful code; train it longer or on more varied images")
    if n >= 2 and stats["largest_bucket_share"] > max_bucket_share:
        raise DcganDataError(
            f"degenerate hash: one hash holds {stats['largest_bucket']} of {n} images "
            f"({stats['largest_bucket_share']:.0%} > {max_bucket_share:.0%}); refusing to remove "
            "them. If the images really are that alike, raise --max-bucket-share")


# --- saving and loading --------------------------------------------------------------------


def save_model(model: HashAutoencoder, path: str | os.PathLike,
               info: dict[str, Any] | None = None) -> None:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "version": VERSION, "config": asdict(model.config),
               "state_dict": state, "info": info or {}}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_model(path: str | os.PathLike, device: str = "cpu") -> tuple[HashAutoencoder, dict]:
    """Load a hash model saved by `save_model`; a missing, corrupt or foreign file is an
    InputError naming what is wrong."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such hash model file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        raise InputError(f"{path}: not a readable hash model ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:120] if str(exc) else ''})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(f"{path}: not a dcgan-data hash model (no '{FORMAT}' header)")
    if payload.get("version") != VERSION:
        raise InputError(f"{path}: hash model version {payload.get('version')}, "
                         f"this tool reads version {VERSION}")
    try:
        config = HashConfig.from_dict(payload["config"])
        if config.bits != HASH_BYTES * 8:
            raise ValueError(f"{config.bits}-bit code, expected {HASH_BYTES * 8}")
        model = HashAutoencoder(config)
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: hash model does not match this tool ({first})") from None
    return model.to(device).eval(), payload.get("info", {})
