"""Per-class AP versus training-instance count (one point per category, log x axis)."""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike


def plot_ap_vs_instances(per_class_ap: Mapping[int, float], train_counts: Mapping[int, int],
                         out_path: str | PathLike[str], *, frequency: Mapping[int, str] | None = None,
                         scheme: str = "lvis", title: str | None = None) -> int:
    """Scatter of per-category AP (points, y) against training instances (x, log scale), with the
    instance-bin boundaries as vertical lines and r/c/f as colours when ``frequency`` is given.

    ``per_class_ap``: category id -> AP in [0, 1] (-1 = no ground truth, left out).
    Categories with 0 training instances are drawn at x = 0.5. Returns the number of points drawn.
    """
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ltbench.evaluation.bins import bin_edges

    colours = {"r": "tab:red", "c": "tab:orange", "f": "tab:blue"}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn = 0
    groups: dict[str, tuple[list[float], list[float]]] = {}
    for cid, ap in per_class_ap.items():
        if ap < 0:
            continue
        n = train_counts.get(cid, 0)
        label = frequency.get(cid, "?") if frequency else "all"
        xs, ys = groups.setdefault(label, ([], []))
        xs.append(n if n > 0 else 0.5)
        ys.append(100.0 * ap)
        drawn += 1
    for label, (xs, ys) in sorted(groups.items()):
        ax.scatter(xs, ys, s=10, alpha=0.7, color=colours.get(label), label=label)
    for low, _high in bin_edges(scheme)[1:]:
        if not math.isinf(low):
            ax.axvline(low, color="grey", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_xlabel("training instances")
    ax.set_ylabel("AP (points)")
    ax.set_title(title or "per-class AP vs training instances")
    if frequency:
        ax.legend(title="frequency")
    save_figure(fig, out_path)
    return drawn


def save_figure(fig, out_path) -> None:
    """Write a matplotlib figure as PNG (120 dpi) atomically and close it."""
    import io

    import matplotlib.pyplot as plt

    from ltbench.io import atomic_open

    if fig.get_layout_engine() is None:  # a figure made with layout="constrained" lays itself out
        fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    with atomic_open(out_path, "wb") as handle:
        handle.write(buf.getvalue())
