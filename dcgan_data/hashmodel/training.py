"""Training the hash model: per-pixel statistics, the denoising corruption, the loop."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from dcgan_data.core.errors import InputError
from dcgan_data.core.files import progress
from dcgan_data.core.images import LUMA
from dcgan_data.hashmodel.autoencoder import CHUNK, DIM, SIDE, HashAutoencoder, level
from dcgan_data.hashmodel.crops import warp_crops
from dcgan_data.hashmodel.options import HashConfig

_LUMA = torch.tensor(LUMA)


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
