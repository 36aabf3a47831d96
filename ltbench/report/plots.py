"""The plots of one table's page: its gains, reproduced against reported, and AP per training-instance bin.

Every plot answers one question about one table and never puts two kinds of metric on one axis: AP-like
metrics (AP, AP_r, AP50, AP1..AP4, in AP points, higher is better) and PwB (lower is better) or accuracies get
panels of their own. Reported numbers are copied from the paper and drawn hollow (and labelled so); reproduced
ones are measured by this harness and drawn filled.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# verdict colours shared with the site (ltbench/report/site.py)
VERDICT_COLOURS = {"within": "#1a7f37", "better": "#1f5fbf", "worse": "#c62828"}
GAIN_COLOURS = {"reproduces": "#1a7f37", "shrinks": "#b7791f", "reverses": "#c62828", None: "#555555"}
GROUP_MARKERS = ("o", "s", "^", "D", "v", "P")


PLOTS_VERSION = "1"  # bump when a plot's drawing changes: cached PNGs are redrawn


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _key_path(out: Path) -> Path:
    return out.with_name("." + out.name + ".key")


def cached(out: Path, data: Any) -> tuple[bool, str]:
    """(whether ``out`` was drawn from exactly ``data`` already, the key of ``data``): the audit rule runs again and
    again during a campaign, and drawing is its slowest part."""
    import hashlib
    import json

    key = hashlib.sha256(json.dumps([PLOTS_VERSION, data], sort_keys=True, default=str).encode()).hexdigest()
    try:
        return out.is_file() and _key_path(out).read_text(encoding="utf-8") == key, key
    except OSError:
        return False, key


def save(fig: Any, out: Path, key: str | None = None, dpi: int = 90) -> None:
    """PNG, written atomically (``ltbench.io``), with the key of the data it shows beside it (``cached``)."""
    import io as _io

    from ltbench import io

    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    with io.atomic_open(out, "wb") as handle:
        handle.write(buf.getvalue())
    if key is not None:
        io.write_text(_key_path(out), key)


def mathtext(header: str) -> str:
    """``AP_r`` -> ``AP$_{r}$``, ``AP^b`` -> ``AP$^{b}$``: a column header as the paper prints it."""
    import re

    return re.sub(r"([_^])([A-Za-z0-9]+)", r"$\1{\2}$", header)


def family(key: str) -> str:
    """The axis a metric may share: ``AP`` for every AP-like key (AP points, higher is better), else the bare key."""
    bare = key.split(".", 1)[-1]
    return "AP" if bare.startswith("AP") else bare


def plot_gains(built: Any, out: Path) -> bool:
    """One panel per (column group, metric) with gains: per method row, the paper's gain (hollow diamond, copied)
    and the reproduced gain (filled dot, with its 95 % Welch interval when both rows have several seeds),
    coloured by the gain verdict. False (nothing written) when the table has no gain with a number yet."""
    panels = []
    for group in built.layout.column_groups:
        for column in group.columns:
            items = []
            for index, gain_row in sorted(built.gains.items()):
                cell = gain_row.cells.get((group.id, column.key))
                if cell is None or cell.status == "empty" or (cell.reported is None and cell.value is None):
                    continue
                items.append((built.rows[index].label, cell))
            if items and any(c.value is not None for _, c in items):
                panels.append((group, column, items))
    if not panels:
        return False
    data = [[g.id, c.key, [(label, cell.status, None if cell.reported is None else str(cell.reported), cell.value, cell.low,
                            cell.high, cell.verdict) for label, cell in items]] for g, c, items in panels]
    done, key = cached(out, data)
    if done:
        return True
    ncols = min(4, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    longest = max(len(items) for _, _, items in panels)
    label_in = 0.065 * max(len(label) for _, _, items in panels for label, _ in items)
    panel_h = 0.32 * longest + 1.1
    fig = _figure((label_in + 2.4) * ncols, nrows * panel_h + 0.5)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    width = (label_in + 2.4) * ncols
    fig.subplots_adjust(left=(label_in + 0.1) / width, right=0.98, wspace=(label_in + 0.3) / 2.4,
                        top=1 - 0.35 / (nrows * panel_h + 0.5), bottom=0.75 / (nrows * panel_h + 0.5),
                        hspace=0.9 / panel_h + 0.25)
    multi = len(built.layout.column_groups) > 1
    for ax, (group, column, items) in zip(axes.flat, panels):
        ys = list(range(len(items)))[::-1]
        for y, (label, cell) in zip(ys, items):
            colour = GAIN_COLOURS.get(cell.verdict, GAIN_COLOURS[None])
            if cell.reported is not None:
                ax.plot(float(cell.reported), y, marker="D", mfc="none", mec="black", ms=6, ls="none")
            if cell.value is not None:
                if cell.has_interval:
                    ax.plot([cell.low, cell.high], [y, y], color=colour, lw=2, solid_capstyle="butt")
                ax.plot(cell.value, y, marker="o", color=colour, ms=6, ls="none")
        ax.axvline(0.0, color="grey", lw=0.8)
        ax.set_yticks(ys, [label for label, _ in items], fontsize=8)
        ax.tick_params(axis="x", labelsize=8)
        title = (f"{group.label} · " if multi else "") + mathtext(column.header)
        ax.set_title(title + (" (lower is better)" if column.lower_is_better else ""), fontsize=9)
        ax.set_xlabel("gain over baseline" + (" (< 0 improves)" if column.lower_is_better else " (points)"), fontsize=8)
        ax.margins(x=0.15, y=0.2)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="D", mfc="none", mec="black", ls="none", label="paper's gain (copied)")]
    handles += [Line2D([], [], marker="o", color=c, ls="none", label=f"reproduced: {v}") for v, c in GAIN_COLOURS.items() if v]
    fig.legend(handles=handles, loc="lower center", ncols=4, fontsize=8, frameon=False)
    save(fig, out, key)
    return True


def plot_reproduced_vs_reported(built: Any, out: Path, scale: str) -> bool:
    """Reproduced (measured) against reported (copied) for every measured cell of the table, one panel per metric
    family (AP-like metrics together; PwB and accuracies each alone), one marker per column group."""
    points: dict[str, list[tuple[float, float, str, bool]]] = {}
    groups = {g.id: g for g in built.layout.column_groups}
    lower = {c.key: c.lower_is_better for g in built.layout.column_groups for c in g.columns}
    for row in built.rows:
        for (group_id, key), cell in row.cells.items():
            if cell.status == "measured" and cell.reported is not None:
                points.setdefault(family(key), []).append((float(cell.reported), float(cell.value), group_id, lower[key]))
    if not points:
        return False
    fams = sorted(points, key=lambda f: (f != "AP", f))
    done, key = cached(out, [scale, [(f, sorted(points[f])) for f in fams], list(groups)])
    if done:
        return True
    fig = _figure(4.2 * len(fams), 4.2)
    axes = fig.subplots(1, len(fams), squeeze=False)[0]
    fig.subplots_adjust(left=0.7 / (4.2 * len(fams)), right=0.97, wspace=0.35, top=0.92, bottom=0.13)
    for ax, fam in zip(axes, fams):
        pts = points[fam]
        for i, group_id in enumerate(groups):
            xs = [p[0] for p in pts if p[2] == group_id]
            ys = [p[1] for p in pts if p[2] == group_id]
            if xs:
                ax.scatter(xs, ys, s=18, marker=GROUP_MARKERS[i % len(GROUP_MARKERS)], alpha=0.8,
                           label=groups[group_id].label if len(groups) > 1 else None)
        top = max(max(p[0] for p in pts), max(p[1] for p in pts), 1.0) * 1.05
        ax.plot([0, top], [0, top], color="grey", lw=0.8, ls="--")
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
        worse_note = " (lower is better)" if any(p[3] for p in pts) else ""
        ax.set_title(("AP-like metrics (AP points)" if fam == "AP" else fam) + worse_note, fontsize=9)
        ax.set_xlabel("reported (copied from the paper)", fontsize=8)
        ax.set_ylabel(f"reproduced ({scale} scale, measured)", fontsize=8)
        if len(groups) > 1:
            ax.legend(fontsize=7)
    save(fig, out, key)
    return True


def plot_ap_by_bin(built: Any, results: Mapping[tuple[str, str], Mapping[str, float]], out: Path, *,
                   scheme: str = "lvis") -> bool:
    """AP per training-instance bin (AP1..AP4), one line per row: measured (solid, mean over seeds) and, where
    the table reports them, the paper's (dashed, copied). One panel per column group. False when no row has
    bin values yet."""
    from ltbench.evaluation.bins import bin_edges

    edges = bin_edges(scheme)
    labels = [f"[{int(lo)}, {'∞' if math.isinf(hi) else int(hi)})" for lo, hi in edges]
    keys = {k for g in built.layout.column_groups for k in (c.key for c in g.columns)}
    iou = "segm" if any(k.startswith("segm.") for k in keys) or not any(k.startswith("bbox.") for k in keys) else "bbox"
    panels = []
    for group in built.layout.column_groups:
        lines = []
        for row in built.layout.rows:
            if row.group != group.id or not row.pairs:
                continue
            measured = []
            for k in range(1, len(edges) + 1):
                values = [results[p][f"{iou}.AP{k}"] for p in row.pairs if p in results and f"{iou}.AP{k}" in results[p]]
                values = [v for v in values if v >= 0]
                measured.append(sum(values) / len(values) if values else math.nan)
            reported = [float(row.reported[f"{iou}.AP{k}"]) if f"{iou}.AP{k}" in row.reported else math.nan
                        for k in range(1, len(edges) + 1)]
            if any(not math.isnan(v) for v in measured):
                lines.append((row.label, measured, reported))
        if lines:
            panels.append((group, lines))
    if not panels:
        return False
    done, key = cached(out, [scheme, iou, [(g.id, lines) for g, lines in panels]])
    if done:
        return True
    fig = _figure(5.2 * len(panels), 4.0)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    fig.subplots_adjust(left=0.7 / (5.2 * len(panels)), right=0.98, wspace=0.25, top=0.92, bottom=0.14)
    for ax, (group, lines) in zip(axes, panels):
        for i, (label, measured, reported) in enumerate(lines):
            colour = f"C{i % 10}"
            ax.plot(range(len(labels)), measured, marker="o", color=colour, label=label)
            if any(not math.isnan(v) for v in reported):
                ax.plot(range(len(labels)), reported, marker="D", mfc="none", ls="--", color=colour)
        ax.set_xticks(range(len(labels)), labels, fontsize=8)
        ax.set_xlabel(f"training instances per category ({scheme} bins)", fontsize=8)
        ax.set_ylabel(f"{iou} AP (points)", fontsize=8)
        title = f"{group.label}: " if len(panels) > 1 or group.label != group.id else ""
        ax.set_title(title + "AP per bin (solid: measured; dashed: paper, copied)", fontsize=9)
        ax.legend(fontsize=7, ncols=1 if len(lines) < 8 else 2)
    save(fig, out, key)
    return True
