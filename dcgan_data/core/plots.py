"""The plots of the reports and of a training run (matplotlib, drawn off-screen to PNG).

Figures are built with matplotlib's object API (no pyplot, so no global state and no display
needed) and written atomically, so a killed run never leaves half a PNG.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullFormatter, ScalarFormatter

from dcgan_data.core.files import atomic_write_bytes

WIDTH, HEIGHT, DPI = 6.0, 3.0, 100  # inches; 600 x 300 px, two fit side by side on a page
BLUE, RED, GREY = "#1f77b4", "#d62728", "#888888"


def _figure(title: str, xlabel: str, ylabel: str) -> tuple[Figure, object]:
    fig = Figure(figsize=(WIDTH, HEIGHT), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=11, loc="left")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def _save(fig: Figure, path: str | os.PathLike) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())


def bar_counts(counts: Mapping[str, int], path: str | os.PathLike, title: str,
               xlabel: str = "items") -> None:
    """Horizontal bars, largest first, each labelled with its count (failures by reason)."""
    ordered = sorted(counts.items(), key=lambda kv: -kv[1])
    fig = Figure(figsize=(WIDTH, max(1.6, 0.9 + 0.35 * len(ordered))), dpi=DPI,
                 layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=11, loc="left")
    names = [name for name, _ in ordered][::-1]
    values = [value for _, value in ordered][::-1]
    bars = ax.barh(names, values, color=RED)
    ax.bar_label(bars, padding=3)
    ax.set_xlabel(xlabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(0, max(values, default=1) * 1.15 or 1)
    ax.spines[["top", "right"]].set_visible(False)
    _save(fig, path)


def histogram(counts: Mapping[int, int], path: str | os.PathLike, title: str, xlabel: str,
              ylabel: str = "count", log: bool = False, start: int | None = None) -> None:
    """Bars for integer values already counted ({value: count}, e.g. group sizes); the axis
    begins at `start` (default: the smallest value)."""
    fig, ax = _figure(title, xlabel, ylabel)
    values = sorted((int(k), int(v)) for k, v in counts.items())
    if values:
        bars = ax.bar([k for k, _ in values], [v for _, v in values], width=0.8, color=BLUE)
        if len(values) <= 12:
            ax.bar_label(bars, padding=2)
        low = values[0][0] if start is None else min(start, values[0][0])
        high = values[-1][0]
        ax.set_xlim(low - 0.6, max(high, low + 4) + 0.6)  # one bar must not fill the plot
        ax.margins(y=0.12)
    if log:
        ax.set_yscale("log")
        ax.set_ylim(bottom=0.7)
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _save(fig, path)


def value_histogram(values: Sequence[float], path: str | os.PathLike, title: str, xlabel: str,
                    marks: Mapping[str, float] | None = None) -> None:
    """A histogram of raw values, with labelled vertical lines (e.g. a threshold)."""
    fig, ax = _figure(title, xlabel, "count")
    values = np.asarray(values, np.float64)
    if len(values):
        high = max([values.max(), *(marks or {}).values()]) * 1.08
        ax.hist(values, bins=np.linspace(0, high, 41), color=BLUE)
        ax.set_xlim(0, high)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    for i, (label, x) in enumerate((marks or {}).items()):
        ax.axvline(x, color=RED if i == 0 else GREY, linestyle="--", label=label)
    if marks:
        ax.legend(frameon=False)
    _save(fig, path)


def bit_balance(rates: Sequence[float], path: str | os.PathLike) -> None:
    """The share of images with each hash bit set; a useful bit sits near 0.5."""
    fig, ax = _figure("Hash bit balance (share of images with the bit set)", "bit", "share set")
    rates = np.asarray(rates, np.float64)
    off = np.abs(rates - 0.5) > 0.4  # nearly constant bits carry almost no information
    ax.bar(np.arange(len(rates)), rates, width=1.0, color=np.where(off, RED, BLUE))
    ax.axhline(0.5, color=GREY, linestyle="--", linewidth=1)
    ax.set_ylim(0, 1)
    ax.set_xlim(-0.5, len(rates) - 0.5)
    _save(fig, path)


def curves(steps: Sequence[float], series: Mapping[str, Sequence[float]],
           path: str | os.PathLike, title: str, ylabel: str, xlabel: str = "step",
           hline: float | None = None) -> None:
    """Lines against step (NaN for a step where a series has no value)."""
    fig, ax = _figure(title, xlabel, ylabel)
    steps = np.asarray(steps, np.float64)
    colours = [BLUE, RED, "#2ca02c", "#9467bd", "#ff7f0e"]
    tops = []
    for i, (name, values) in enumerate(series.items()):
        y = np.asarray(values, np.float64)
        seen = ~np.isnan(y)
        ax.plot(steps[seen], y[seen], label=name, color=colours[i % len(colours)],
                linewidth=1.2, marker="o" if seen.sum() <= 20 else None, markersize=3)
        if seen.any():
            tops.append(np.percentile(y[seen], 99))
    if tops and all(np.isfinite(tops)) and max(tops) > 0:
        bottom, top = ax.get_ylim()
        ax.set_ylim(bottom, min(top, max(tops) * 1.1))  # one early spike must not flatten all
    if hline is not None:
        ax.axhline(hline, color=GREY, linestyle="--", linewidth=1)
    if len(series) > 1:
        ax.legend(frameon=False)
    _save(fig, path)


def plot_losses(metrics: list[dict], path: str | os.PathLike) -> None:
    """A training run's loss.png: loss_D and loss_G against step."""
    steps = [m["step"] for m in metrics]
    losses = {name: [m.get(name, np.nan) for m in metrics] for name in ("loss_D", "loss_G")}
    curves(steps, losses, path, "Losses", "BCE loss")
