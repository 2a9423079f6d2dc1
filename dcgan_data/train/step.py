"""G and D as the loop trains them: their optimisers, one training step, and what a
checkpoint holds of them.

One step, as in the paper (Adam 2e-4, beta1 0.5, batch 128, BCE on D's logit):
  D: one forward on the real batch and one on G(z) (separate batches, so separate BatchNorm
     statistics), loss = BCE(D(x), 1) + BCE(D(G(z)), 0), one Adam step.
  G: the updated D on the same G(z), non-saturating loss BCE(D(G(z)), 1), one Adam step;
     D's weights are frozen for this backward, so no gradient for them is computed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dcgan_data.core.errors import InputError
from dcgan_data.core.shards import ShardSet
from dcgan_data.train.checkpoint import FORMAT, rng_states, set_rng_states
from dcgan_data.train.feed import data_checksum
from dcgan_data.train.model import build
from dcgan_data.train.options import TrainOptions


def step_seed(seed: int, step: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0])

def make_adam(model: nn.Module, cfg: TrainOptions) -> torch.optim.Optimizer:
    """Adam(lr, beta1, 0.999), fused into one kernel where torch has it (CPU: torch >= 2.4);
    on CPU the per-parameter loop costs as much as a tenth of a step."""
    try:
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999),
                                fused=True)
    except RuntimeError:
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))


def train_step(g: nn.Module, d: nn.Module, d_frozen: nn.Module, d_params: list[nn.Parameter],
               opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
               real: torch.Tensor, z: torch.Tensor, amp: contextlib.AbstractContextManager
               ) -> torch.Tensor:
    """One D step then one G step; returns [loss_D, loss_G, D(x), D(G(z))] (no host sync)."""
    with amp:
        fake = g(z)
        logit_real = d(real)
        logit_fake = d(fake.detach())
        loss_d = (F.binary_cross_entropy_with_logits(logit_real, torch.ones_like(logit_real))
                  + F.binary_cross_entropy_with_logits(logit_fake, torch.zeros_like(logit_fake)))
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()

    for p in d_params:  # the G step needs gradients through D, not for D's weights
        p.requires_grad_(False)
    with amp:
        logit_g = d_frozen(fake)
        loss_g = F.binary_cross_entropy_with_logits(logit_g, torch.ones_like(logit_g))
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    for p in d_params:
        p.requires_grad_(True)

    d_x = torch.sigmoid(logit_real.detach().float()).mean()
    d_g_z = torch.sigmoid(logit_fake.detach().float()).mean()
    return torch.stack([loss_d.detach().float(), loss_g.detach().float(), d_x, d_g_z])


@dataclass
class Models:
    """G and D with their optimisers, and what the loop calls: DDP wrappers (gradient
    all-reduce) and torch.compile'd versions when asked; the bare modules are checkpointed."""

    g_model: nn.Module
    d_model: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    g: nn.Module
    d: nn.Module
    d_frozen: nn.Module


def build_models(cfg: TrainOptions, device: torch.device, world: int) -> Models:
    """The paper's init from the seeded global RNG, identical on every rank."""
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    random.seed(cfg.seed)
    g_model, d_model = build(cfg.size, cfg.nz, cfg.ngf, cfg.ndf,
                             cpu_fast_path=device.type == "cpu")
    g_model = g_model.to(device, memory_format=torch.channels_last)
    d_model = d_model.to(device, memory_format=torch.channels_last)
    g, d, d_frozen = g_model, d_model, d_model
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        g = nn.parallel.DistributedDataParallel(g_model, device_ids=ids)
        d = nn.parallel.DistributedDataParallel(d_model, device_ids=ids)
    if cfg.compile:
        g, d, d_frozen = torch.compile(g), torch.compile(d), torch.compile(d_model)
    return Models(g_model, d_model, make_adam(g_model, cfg), make_adam(d_model, cfg),
                  g, d, d_frozen)


def restore(models: Models, ckpt: dict, path: Path) -> int:
    """Load a checkpoint's weights, optimiser and RNG states; returns its step."""
    try:
        models.g_model.load_state_dict(ckpt["G"])
        models.d_model.load_state_dict(ckpt["D"])
        models.opt_g.load_state_dict(ckpt["opt_G"])
        models.opt_d.load_state_dict(ckpt["opt_D"])
    except (KeyError, RuntimeError, ValueError) as exc:
        raise InputError(f"{path}: does not fit this model ({str(exc)[:120]})") from None
    set_rng_states(ckpt["rng"])
    return int(ckpt["step"])

def checkpoint_state(step: int, cfg: TrainOptions, shards: ShardSet, models: Models) -> dict:
    return {"format": FORMAT, "version": 1, "step": step, "config": dataclasses.asdict(cfg),
            "data_rows": len(shards), "data_checksum": data_checksum(shards),
            "G": models.g_model.state_dict(), "D": models.d_model.state_dict(),
            "opt_G": models.opt_g.state_dict(), "opt_D": models.opt_d.state_dict(),
            "rng": rng_states()}

