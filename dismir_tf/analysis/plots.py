"""Pictures of the interests (Figures 3 and 4 of the paper), headless.

matplotlib (Agg backend) and scikit-learn's t-SNE are imported inside the
functions, so importing this module costs nothing and nothing else in the
package needs them.

* :func:`plot_user_interests`: one panel per run, a 2-D t-SNE of one user's
  history items coloured by the interest each is assigned to (Figure 3).
* :func:`plot_catalogue`: t-SNE of (a sample of) the item embeddings, one
  row per run, one column per colouring (clusters of the partition
  weights, argmax_k w_ik, planted groups on the synthetic set).
* :func:`plot_sweep`: one panel per hyper-parameter, Recall@20 and
  NDCG@20 against its values (Figure 4).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Groups coloured individually in a catalogue panel; the rest are grey.
MAX_COLOURED_GROUPS = 10


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def tsne_2d(
    x: np.ndarray, seed: int = 0, perplexity: float | None = None
) -> np.ndarray:
    """[n, d] -> [n, 2] by t-SNE (seeded; PCA initialisation).

    The perplexity defaults to min(30, (n - 1) / 3), so a user's 20 items
    work as well as 2,000 catalogue items; below 5 points t-SNE means
    nothing and the first two principal components are returned instead.
    Runs on one thread (2,000 x 64 items: about 30 s).
    """
    x = np.asarray(x, np.float64)
    n = len(x)
    if n < 5:
        centred = x - x.mean(0)
        if n < 2:
            return np.zeros((n, 2))
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        out = centred @ vt[:2].T
        return np.pad(out, ((0, 0), (0, 2 - out.shape[1])))
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    if perplexity is None:
        perplexity = min(30.0, (n - 1) / 3.0)
    # One thread: on a loaded machine OpenMP's spinning threads make the
    # Barnes-Hut gradient 10x slower, not faster.
    with threadpool_limits(1):
        return TSNE(
            n_components=2,
            perplexity=perplexity,
            init="pca",
            learning_rate="auto",
            random_state=seed,
        ).fit_transform(x)


def _colours(n: int):
    plt = pyplot()
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


@dataclasses.dataclass
class UserPanel:
    """One run's picture of one user: 2-D points and their interests."""

    title: str
    xy: np.ndarray  # [n, 2]
    interest: np.ndarray  # [n] in 0..F-1
    num_interests: int


def plot_user_interests(panels: Sequence[UserPanel], out: str, title: str) -> str:
    """Figure 3: one panel per run; colour = the item's interest."""
    plt = pyplot()
    n = len(panels)
    cols = n if n <= 3 else math.ceil(n / 2)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.2 * cols + 0.4, 3.9 * rows + 0.3), squeeze=False
    )
    for ax in axes.flat[n:]:
        ax.axis("off")
    f_max = max(p.num_interests for p in panels)
    colours = _colours(f_max)
    for ax, p in zip(axes.flat, panels):
        for f in range(p.num_interests):
            sel = p.interest == f
            ax.scatter(
                p.xy[sel, 0],
                p.xy[sel, 1],
                s=36,
                color=colours[f],
                edgecolors="k",
                linewidths=0.4,
                label=f"interest {f + 1} ({int(sel.sum())})",
            )
        ax.set_title(p.title, fontsize=9)
        ax.set_xlabel("t-SNE 1")
        ax.set_ylabel("t-SNE 2")
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, loc="best", title="interest (items)", title_fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, out)


@dataclasses.dataclass
class CatalogueRow:
    """One run's catalogue picture: 2-D points and several colourings."""

    title: str
    xy: np.ndarray  # [n, 2]
    colourings: list[tuple[str, np.ndarray]]  # (name, [n] labels)


def _group_legend(ax, xy: np.ndarray, labels: np.ndarray) -> None:
    """Scatter coloured by label: the largest groups in colour, others grey."""
    values, counts = np.unique(labels, return_counts=True)
    order = values[np.argsort(-counts, kind="stable")]
    top = order[:MAX_COLOURED_GROUPS]
    rest = ~np.isin(labels, top)
    if rest.any():
        ax.scatter(
            xy[rest, 0],
            xy[rest, 1],
            s=3,
            color="0.8",
            label=f"other {len(order) - len(top)} groups ({int(rest.sum())})",
        )
    colours = _colours(len(top))
    for c, g in zip(colours, top):
        sel = labels == g
        ax.scatter(
            xy[sel, 0], xy[sel, 1], s=3, color=c, label=f"{g} ({int(sel.sum())})"
        )
    ax.legend(
        fontsize=5.5,
        markerscale=3,
        loc="upper right",
        title="group (items)",
        title_fontsize=6,
        framealpha=0.8,
    )


def plot_catalogue(rows: Sequence[CatalogueRow], out: str, title: str) -> str:
    """Item embeddings in 2-D, one row per run, one column per colouring."""
    plt = pyplot()
    n_rows = len(rows)
    n_cols = max(len(r.colourings) for r in rows)
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(4.2 * n_cols, 4.0 * n_rows + 0.3), squeeze=False
    )
    for r, row in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            if c >= len(row.colourings):
                ax.axis("off")
                continue
            name, labels = row.colourings[c]
            _group_legend(ax, row.xy, np.asarray(labels))
            ax.set_title(f"{row.title}\ncolour: {name}", fontsize=8)
            ax.set_xlabel("t-SNE 1")
            ax.set_ylabel("t-SNE 2")
            ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, out)


@dataclasses.dataclass
class SweepCurve:
    """One hyper-parameter: its values and the metrics at each."""

    name: str  # e.g. "lambda"
    values: list  # x values, in order
    metrics: dict[str, list[float]]  # metric -> one value per x (nan: none)
    base: object = None  # the value the other panels hold fixed


def plot_sweep(
    curves: Sequence[SweepCurve], out: str, title: str, ylabel: str = "test"
) -> str:
    """Figure 4: one panel per hyper-parameter, one line per metric.

    The first metric reads on the left axis, the second on the right one
    (Recall@20 and NDCG@20 differ by a factor of two, so one shared axis
    flattens both), any further ones on the left.  The x axis is
    categorical (the swept values, evenly spaced), so lambda = 0 sits next
    to 0.01; the dashed line marks the value held fixed in the other panels.
    """
    plt = pyplot()
    n = len(curves)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n + 0.4, 3.5), squeeze=False)
    markers = ["o", "s", "^", "D"]
    colours = _colours(10)
    for ax, cur in zip(axes[0], curves):
        x = np.arange(len(cur.values))
        handles = []
        right = ax.twinx() if len(cur.metrics) > 1 else None
        for m, (metric, ys) in enumerate(cur.metrics.items()):
            target = right if m == 1 and right is not None else ax
            handles += target.plot(
                x, ys, marker=markers[m % len(markers)], color=colours[m], label=metric
            )
            if m < 2:
                target.set_ylabel(f"{ylabel} {metric}", color=colours[m], fontsize=8)
                target.tick_params(axis="y", labelsize=7, labelcolor=colours[m])
        if cur.base in cur.values:
            handles.append(
                ax.axvline(
                    cur.values.index(cur.base),
                    color="0.6",
                    ls="--",
                    lw=0.8,
                    label="fixed elsewhere",
                )
            )
        ax.set_xticks(x)
        ax.set_xticklabels(
            [f"{v:g}" if isinstance(v, float) else str(v) for v in cur.values]
        )
        ax.set_xlim(-0.3, len(x) - 0.7)
        ax.set_xlabel(cur.name)
        ax.set_title(f"varying {cur.name}", fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(alpha=0.3)
        ax.legend(handles=handles, fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, out)


def _save(fig, out: str, dpi: int = 100) -> str:
    """Writes ``fig`` as a 256-colour PNG (a third of the RGBA size; the
    plots use a dozen colours plus their anti-aliasing)."""
    import io
    import os

    from PIL import Image

    from dismir_tf.io_utils import atomic_write

    plt = pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    plt.close(fig)
    buf.seek(0)
    image = Image.open(buf).convert("RGB").quantize(256)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    atomic_write(out, lambda tmp: image.save(tmp, format="PNG", optimize=True))
    return out
