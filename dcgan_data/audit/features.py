"""The hash model the audit searches with, and its view of 32x32 crops: hashes, probe
hashes and code values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dcgan_data.core.shards import ShardSet
from dcgan_data.hashmodel import hashing

MODEL = "hash_model.pt"  # saved in OUT when the audit had to train one


def get_model(train: Path, shards: ShardSet, model_path: Path | None, device: str,
              seed: int, config: hashing.HashConfig | None = None
              ) -> tuple[hashing.HashAutoencoder, dict[str, Any]]:
    """--model; else the hash model of the dedup stage that wrote `train` (its own
    hash_model.pt, or the --model its report names); else a new one trained on `train`."""
    if model_path is None:
        for candidate in _dedup_models(train):
            if candidate.is_file():
                model_path = candidate
                break
    if model_path is not None:
        model, info = hashing.load_model(model_path, device)
        return model, {"model": str(model_path), "trained": False}
    config = config or hashing.HashConfig()
    crops = hashing.sample_crops(shards, config.max_train_images, np.random.default_rng(seed))
    model, stats = hashing.train_hash_model(crops, config, device, seed)
    return model, {"model": MODEL, "trained": True, **stats}


def _dedup_models(train: Path) -> list[Path]:
    from dcgan_data.dedup.stage import MODEL as DEDUP_MODEL
    from dcgan_data.dedup.stage import REPORT as DEDUP_REPORT

    found = [train / DEDUP_MODEL]
    try:
        used = json.loads((train / DEDUP_REPORT).read_text(encoding="utf-8"))["model"]["model"]
    except (OSError, ValueError, KeyError, TypeError):
        return found
    if used:
        path = Path(used)
        found.append(path if path.is_absolute() or path.exists() else train / path.name)
    return found


class Features:
    """A hash model's view of 32x32 crops: hashes, probe hashes and the 128 code values
    before the threshold (the batch-normed pre-activations: each unit in units of its own
    spread over the training images)."""

    def __init__(self, model: hashing.HashAutoencoder, device: str):
        self.hasher = hashing.Hasher(model, device, probes=True)
        self.scale = torch.sqrt(model.norm.running_var + model.norm.eps).to(device)
        self.config = model.config

    @torch.no_grad()
    def codes(self, crops: np.ndarray) -> np.ndarray:
        out = np.empty((len(crops), self.hasher.weight.shape[1]), np.float32)
        for start in range(0, len(crops), hashing.CHUNK):
            pixels = torch.from_numpy(crops[start : start + hashing.CHUNK])
            pixels = pixels.to(self.hasher.weight.device).float()
            gain = hashing.level_gain(pixels, self.config)
            code = (gain * (pixels @ self.hasher.weight) - self.hasher.threshold) / self.scale
            out[start : start + len(code)] = code.cpu().numpy()
        return out

    def __call__(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        hashes, probes = self.hasher(crops)
        return hashes, probes, self.codes(crops)


def probe_keys(probes: np.ndarray) -> np.ndarray:
    """(N, moves, 16) probe hashes -> (N, moves) 64-bit keys. Two equal hashes get equal keys;
    a rare collision only adds a candidate, which the pixel distance then judges."""
    halves = np.ascontiguousarray(probes).view(np.uint64)  # (N, moves, 2)
    return halves[..., 0] ^ (halves[..., 1] * np.uint64(0x9E3779B97F4A7C15))
