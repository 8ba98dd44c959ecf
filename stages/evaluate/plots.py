"""Segmentation bar plots, like Figure 5 of the LCDC paper.

One figure per test video: the ground-truth bar on top, then one bar per (backbone, head), each
with its frame accuracy on the right. All figures share one class -> colour map so a colour
means the same class everywhere; each legend lists the classes that occur in its figure.
Background classes are light grey (a choice: the paper does not fix colours) so the actions
stand out. matplotlib is used through the Agg canvas directly, without pyplot's global state.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from stages.common.labels import ClassList

BACKGROUND_COLOUR = (0.85, 0.85, 0.85)


def class_order(
    labels: Iterable[str], background: Sequence[str], classes: ClassList | None = None
) -> list[str]:
    """The mapping file's order when given, else the background classes that occur (in the
    order named) followed by the other labels sorted."""
    if classes is not None:
        return list(classes.names)
    seen = set(labels)
    return [b for b in background if b in seen] + sorted(seen - set(background))


def class_colours(order: Sequence[str], background: Sequence[str]) -> dict[str, tuple[float, ...]]:
    """Class -> RGB in class order: grey for background; the 9 strong non-grey `tab20` colours,
    then their 9 light ones (so the first nine actions are easy to tell apart), or `turbo` past
    18. tab20's greys (14, 15) are skipped: they read as background."""
    from matplotlib import colormaps

    actions = [c for c in order if c not in background]
    if len(actions) <= 18:
        strong = [i for i in range(0, 20, 2) if i != 14]
        tab20 = [*strong, *(i + 1 for i in strong)]
        palette = [colormaps["tab20"](tab20[i])[:3] for i in range(len(actions))]
    else:
        palette = [c[:3] for c in colormaps["turbo"](np.linspace(0.0, 1.0, len(actions)))]
    action_colour = dict(zip(actions, palette, strict=True))
    return {c: action_colour.get(c, BACKGROUND_COLOUR) for c in order}


def _rgb_strip(labels: np.ndarray, colours: dict[str, tuple[float, ...]]) -> np.ndarray:
    names, inverse = np.unique(labels.astype(str), return_inverse=True)
    table = np.array([colours[n] for n in names], dtype=float)
    return table[inverse][None, :, :]


def plot_video(
    out: str | Path,
    title: str,
    gt: np.ndarray,
    rows: Sequence[tuple[str, np.ndarray, float]],
    colours: dict[str, tuple[float, ...]],
    xlabel: str = "frame",
) -> None:
    """Write a PNG: ground-truth bar, then one (name, labels, accuracy) bar per row.

    Rows of another length than the ground truth (another feature rate) are stretched to it.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    bars = [("ground truth", gt, None), *rows]
    present = set(np.unique(gt.astype(str)))
    for _, labels, _ in rows:
        present.update(np.unique(labels.astype(str)))
    legend = [c for c in colours if c in present]
    legend_rows = -(-len(legend) // 6)
    fig = Figure(figsize=(10, 0.4 * len(bars) + 0.9 + 0.25 * legend_rows))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()  # one axes for all bars: far cheaper to draw than one per bar
    top = len(bars)
    for i, (_, labels, acc) in enumerate(bars):
        y = top - 1 - i
        ax.imshow(
            _rgb_strip(labels, colours),
            aspect="auto",
            interpolation="nearest",
            extent=(0, len(gt), y + 0.1, y + 0.9),
        )
        if acc is not None:
            ax.text(1.01, y + 0.5, f"{acc:.1f}%", transform=ax.get_yaxis_transform(), va="center")
    ax.set_xlim(0, len(gt))
    ax.set_ylim(0, top)
    ax.set_yticks([top - 0.5 - i for i in range(top)], [name for name, _, _ in bars])
    ax.tick_params(axis="y", length=0)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.set_xlabel(xlabel)
    fig.suptitle(title)
    fig.legend(
        handles=[Patch(facecolor=colours[c], edgecolor="none", label=c) for c in legend],
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=min(6, max(1, len(legend))),
        frameon=False,
        fontsize="small",
    )
    fig.savefig(out, dpi=100, bbox_inches="tight")
