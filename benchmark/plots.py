"""The report's PNG figures: latency against mIoU (the paper's Figure 1), size bars, the agreement heat map,
worst-image overlays."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def latency_vs_accuracy(points: list[dict], path: Path, ylabel: str) -> None:
    """Scatter of {label, latency_ms, score, bytes}: x latency, y score, marker area ~ file size. Each marker carries a
    number and the legend beside the axes names it, so artifacts that land close together stay readable."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9.5, 5))
    biggest = max(p["bytes"] for p in points)
    spans = [max(v) - min(v) or 1.0 for v in ([p["latency_ms"] for p in points], [p["score"] for p in points])]
    placed: list[tuple[float, float]] = []
    for n, p in enumerate(sorted(points, key=lambda p: (p["latency_ms"], -p["score"])), start=1):
        x, y = p["latency_ms"], p["score"]
        ax.scatter(x, y, s=60 + 900 * p["bytes"] / biggest, alpha=0.55,
                   label=f"{n}  {p['label']} ({p['bytes'] / 1000:,.0f} KB)")
        near = sum(abs(x - a) < 0.04 * spans[0] and abs(y - b) < 0.04 * spans[1] for a, b in placed)
        ax.annotate(str(n), (x, y), xytext=(14 * near, 14 * near), textcoords="offset points", ha="center", va="center",
                    fontsize=8, weight="bold", arrowprops={"arrowstyle": "-", "alpha": 0.4} if near else None)
        placed.append((x, y))
    legend = ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False, borderaxespad=0)
    for handle in legend.legend_handles:
        handle.set_sizes([40])
    ax.margins(x=0.15, y=0.2)
    ax.set_xlabel("model latency, p50 (ms, batch 1)")
    ax.set_ylabel(ylabel)
    ax.set_title("latency vs accuracy (marker area ~ file size)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def size_bars(bars: list[dict], path: Path) -> None:
    """Horizontal bars of {label, weight_bytes, graph_bytes, bytes} in KB: weights and graph stacked. The legend sits
    under the axes and the x range leaves room for each total, so neither covers a bar or its label."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(bars) + 2.0))
    labels = [b["label"] for b in bars]
    weights = np.array([(b["weight_bytes"] or 0) / 1000 for b in bars])
    total = np.array([b["bytes"] / 1000 for b in bars])
    ax.barh(labels, weights, label="weights")
    ax.barh(labels, total - weights, left=weights, label="graph and metadata (all bytes where unknown)")
    for y, t in enumerate(total):
        ax.text(t, y, f" {t:,.0f}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.12 * total.max())
    ax.set_xlabel("KB on disk")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.5 / (0.45 * len(bars) + 2.0) - 0.06), ncol=2,
              frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


NINES = (1, 4)  # colour range of the heat map in "nines" of agreement: 90% .. 99.99% (and above)


def agreement_heatmap(labels: list[str], agreement: list[list[float]], title: str, path: Path) -> None:
    """Square heat map of pairwise agreement (fractions), each cell's percent written in it. The colour is the number
    of nines, -log10(1 - agreement), so 99.0% and 99.9% sit a third of the scale apart; the diagonal is grey."""
    from matplotlib.colors import Normalize

    from egeunet.benchmark.agreement import percent

    plt = _pyplot()
    values = np.asarray(agreement, np.float64)
    k = len(labels)
    nines = np.ma.masked_array(-np.log10(np.maximum(1 - values, 10.0 ** -NINES[1])), np.eye(k, dtype=bool))
    cmap = plt.get_cmap("RdYlGn").with_extremes(bad="#d9d9d9")
    norm = Normalize(*NINES, clip=True)
    longest = max(map(len, labels))  # tick labels take up to 0.09 inch a character
    fig, ax = plt.subplots(figsize=(2.0 + 0.75 * k + 0.09 * longest, 1.2 + 0.7 * k + 0.045 * longest))
    image = ax.imshow(nines, cmap=cmap, norm=norm)
    for i in range(k):
        for j in range(k):
            shade = cmap(norm(nines[i, j])) if i != j else (0.85, 0.85, 0.85, 1)
            dark = 0.299 * shade[0] + 0.587 * shade[1] + 0.114 * shade[2] < 0.5
            ax.text(j, i, "-" if i == j else percent(values[i, j], 2), ha="center", va="center", fontsize=9,
                    color="white" if dark else "black")
    ax.set_xticks(range(k), labels, rotation=35, ha="right", fontsize=9)
    ax.set_yticks(range(k), labels, fontsize=9)
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, ticks=range(NINES[0], NINES[1] + 1))
    ticks = [f"{100 - 10 ** (2 - n):g}%" for n in range(NINES[0], NINES[1] + 1)]
    bar.ax.set_yticklabels([*ticks[:-1], f"≥{ticks[-1]}"])
    bar.set_label("mask agreement (log scale of disagreement)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _tint(image: np.ndarray, mask: np.ndarray | None, colour: tuple[int, int, int]) -> np.ndarray:
    """The image with a mask's area tinted and its outline drawn in ``colour``."""
    import cv2

    out = image.copy()
    if mask is None:
        return out
    m = mask.astype(np.uint8)
    out[m > 0] = (0.6 * out[m > 0] + 0.4 * np.array(colour)).astype(np.uint8)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, colour, 1)
    return out


def overlay_grid(images: np.ndarray, columns: dict[str, np.ndarray | None], titles: list[str], path: Path) -> None:
    """One row per image (uint8 N x S x S x 3), one column per named mask set (N x S x S bool) drawn over it."""
    plt = _pyplot()
    colours = [(0, 200, 0), (230, 0, 230), (255, 200, 0)]
    names = list(columns)
    fig, axes = plt.subplots(len(images), len(names), figsize=(2.6 * len(names), 2.7 * len(images)), squeeze=False)
    for r, image in enumerate(images):
        for c, name in enumerate(names):
            masks = columns[name]
            axes[r, c].imshow(_tint(image, None if masks is None else masks[r], colours[c % 3]))
            axes[r, c].set_title(f"{name}\n{titles[r]}" if c == 0 else name, fontsize=8)
            axes[r, c].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
