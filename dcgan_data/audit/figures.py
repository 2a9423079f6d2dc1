"""The audit's pictures: the nearest sample / training pairs, and both distances' spread."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from dcgan_data.core.images import contact_sheet, save_png


def write_nearest(path: Path, samples: np.ndarray, train_rows: np.ndarray,
                  distance: np.ndarray, relative: np.ndarray, copy: np.ndarray) -> None:
    """Sample | nearest training image, closest first, each labelled with its distances."""
    side = max(64, samples.shape[1])
    tiles = []
    for sample, train_row, d, r, c in zip(samples, train_rows, distance, relative, copy,
                                          strict=True):
        pair = [cv2.resize(img, (side, side), interpolation=cv2.INTER_NEAREST)
                for img in (sample, train_row)]
        label = np.full((16, 2 * side + 2, 3), 255, np.uint8)
        text = f"{d:.1f} / {r:.2f}" + (" COPY" if c else "")
        cv2.putText(label, text, (2, 12), cv2.FONT_HERSHEY_PLAIN, 0.9,
                    (200, 0, 0) if c else (0, 0, 0), 1, cv2.LINE_AA)
        gap = np.full((side, 2, 3), 255, np.uint8)
        tiles.append(np.concatenate([np.concatenate([pair[0], gap, pair[1]], 1), label], 0))
    save_png(path, contact_sheet(np.stack(tiles), cols=4, pad=8))


def write_distances(path: Path, distances: tuple[np.ndarray, np.ndarray],
                    relative: tuple[np.ndarray, np.ndarray], threshold: float,
                    title: str) -> None:
    """Samples' and calibration images' distances side by side: to the nearest training image
    (left), and relative to the next neighbours, with the copy threshold (right)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from dcgan_data.core.files import atomic_path

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=100)
    for ax, (samples, held_out), label in (
            (axes[0], distances, "distance to the nearest training image (RMS grey levels)"),
            (axes[1], relative, "relative distance (nearest / mean of the next 5)")):
        samples, held_out = samples[np.isfinite(samples)], held_out[np.isfinite(held_out)]
        top = max(float(np.max(samples, initial=0)), float(np.max(held_out, initial=0)), 1e-3)
        bins = np.linspace(0, top * 1.02, 50)
        ax.hist(held_out, bins, density=True, alpha=0.45, color="tab:blue",
                label=f"calibration images ({len(held_out)})")
        ax.hist(samples, bins, density=True, histtype="step", linewidth=2, color="tab:red",
                label=f"generated samples ({len(samples)})")
        ax.set_xlabel(label)
        ax.set_ylabel("density")
    axes[1].axvline(threshold, color="black", linestyle="--",
                    label=f"copy threshold {threshold:.3f}")
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
