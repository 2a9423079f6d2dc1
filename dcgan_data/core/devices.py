"""Choosing the torch device: one name for the CPU and GPU paths of every stage."""

from __future__ import annotations

import torch

from dcgan_data.core.errors import InputError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> str:
    """"cpu" or "cuda" for a --device value; auto picks cuda when torch sees a GPU."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name not in DEVICE_CHOICES:
        raise InputError(f"--device {name}: choose {', '.join(DEVICE_CHOICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device cuda, but this torch {torch.__version__} sees no GPU")
    return name
