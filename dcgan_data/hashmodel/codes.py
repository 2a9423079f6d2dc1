"""Hashing with a trained model: the 16-byte codes and probe hashes of crops and shards, and
the checks that refuse a degenerate code before it removes anything."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from dcgan_data.core.errors import DcganDataError
from dcgan_data.core.files import progress
from dcgan_data.core.shards import ShardSet
from dcgan_data.hashmodel.autoencoder import CHUNK, DIM, SIDE, HashAutoencoder, level_gain
from dcgan_data.hashmodel.crops import iter_crops, warp

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
