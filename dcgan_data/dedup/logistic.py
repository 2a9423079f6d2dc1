"""The logistic models that decide on pairs: the fixed verification model
(`verify_model.json`, fitted by `tools/fit_verify.py`) and the fit both it and `selffit` use."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from dcgan_data.dedup.features import FEATURES

MODEL_FILE = Path(__file__).with_name("verify_model.json")
# pairs scored at a time: only a chunk's inputs are held as float64. A power of two, so that
# every pair falls in the same block of BLAS's matrix-vector kernel as in one piece (blocks of
# 4 rows here): its log-odds are the same to the bit
CHUNK_ROWS = 1 << 20


def expand(features: np.ndarray) -> np.ndarray:
    """Features and their pairwise products (the logistic model's inputs): texture changes
    how much correlation and colour mean, which a plain linear model cannot say."""
    columns = [features]
    for i in range(features.shape[1]):
        columns.append(features[:, i : i + 1] * features[:, i:])
    return np.concatenate(columns, axis=1).astype(np.float64)


class Logistic:
    """A fitted logistic model (`fit`'s parameters): log-odds of its inputs, expanded by
    their pairwise products when it was fitted so."""

    def __init__(self, params: dict[str, Any]):
        self.params = params
        self.mean = np.asarray(params["mean"], np.float64)
        self.scale = np.asarray(params["scale"], np.float64)
        self.weights = np.asarray(params["weights"], np.float64)
        self.bias = float(params["bias"])
        self.quadratic = bool(params.get("quadratic", True))

    def log_odds(self, features: np.ndarray, chunk: int = CHUNK_ROWS) -> np.ndarray:
        """Log-odds of each row of `features`, `chunk` rows at a time (see CHUNK_ROWS)."""
        out = np.empty(len(features), np.float64)
        for start in range(0, len(features), chunk):
            part = features[start : start + chunk]
            inputs = expand(part) if self.quadratic else part
            out[start : start + chunk] = (inputs - self.mean) / self.scale @ self.weights + \
                self.bias
        return out


class VerifyModel(Logistic):
    """The fixed logistic model over `expand(pair_features)`, with its calibrated threshold
    and the margins of its second looks."""

    def __init__(self, params: dict[str, Any]):
        if tuple(params["features"]) != FEATURES:
            raise ValueError("verify model was fitted on other features")
        super().__init__(params)
        self.threshold = float(params["threshold"])
        self.align_band = float(params.get("align_band", 0.0))  # 0: no second look
        self.align_margin = float(params.get("align_margin", 0.0))
        self.overlay_band = float(params.get("overlay_band", 0.0))  # 0: no overlay look
        self.overlay_margin = float(params.get("overlay_margin", 0.0))
        self.chroma_margin = float(params.get("chroma_margin", math.inf))  # inf: no chroma look
        self.tone_band = float(params.get("tone_band", 0.0))  # 0: no tone look
        self.tone_margin = float(params.get("tone_margin", 0.0))

    @classmethod
    def load(cls, path: str | Path = MODEL_FILE) -> VerifyModel:
        return cls(json.loads(Path(path).read_text()))


def fit(features: np.ndarray, same: np.ndarray, l2: float = 1e-3,
        names: tuple[str, ...] = FEATURES, quadratic: bool = True) -> dict[str, Any]:
    """Fit the logistic model to pair features (columns `names`; with their pairwise products
    when `quadratic`) and truth (no threshold yet)."""
    x = expand(features) if quadratic else features.astype(np.float64)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    inputs = torch.tensor((x - mean) / scale)
    target = torch.tensor(same, dtype=torch.float64)
    weights = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([weights, bias], max_iter=500)

    def loss() -> torch.Tensor:
        optimiser.zero_grad()
        value = F.binary_cross_entropy_with_logits(inputs @ weights + bias, target) + \
            l2 * weights.square().sum()
        value.backward()
        return value

    optimiser.step(loss)
    return {"features": list(names), "quadratic": quadratic, "mean": mean.tolist(),
            "scale": scale.tolist(),
            "weights": weights.detach().numpy().tolist(), "bias": float(bias.item())}
