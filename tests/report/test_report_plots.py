"""The plots: confusion heatmaps that fit their labels and colour bar, and the per-table plots of the site."""

from __future__ import annotations

import numpy as np
import pytest


def test_confusion_heatmap_names_classes_and_keeps_the_colour_bar_inside(tmp_path, monkeypatch):
    import ltbench.evaluation.plots as plots
    from ltbench.evaluation.confusion import plot_confusion_heatmap

    captured = {}

    def keep(fig, out_path):
        captured["fig"] = fig
        fig.canvas.draw()

    monkeypatch.setattr(plots, "save_figure", keep)
    names = [f"class_{i}" for i in range(12)]
    names[3] = "monitor_(computer_equipment) computer_monitor [c]"
    M = np.random.default_rng(0).random((12, 12))
    drawn = plot_confusion_heatmap(M, names, tmp_path / "c.png", num_classes=12)
    fig = captured["fig"]
    heatmap, colourbar = fig.axes
    labels = [t.get_text() for t in heatmap.get_yticklabels()]
    assert labels[:3] == ["class_0", "class_1", "class_2"] and labels[3].startswith("monitor_(computer_equipment)")
    assert len(labels[3]) <= 36 and labels[3].endswith("…") and drawn == list(range(12))
    renderer = fig.canvas.get_renderer()
    width, height = fig.bbox.width, fig.bbox.height
    for artist in (colourbar, colourbar.yaxis.label, *heatmap.get_yticklabels(), *heatmap.get_xticklabels()):
        box = artist.get_window_extent(renderer) if hasattr(artist, "get_window_extent") else artist.get_tightbbox(renderer)
        assert box.x0 >= -1 and box.y0 >= -1 and box.x1 <= width + 1 and box.y1 <= height + 1, artist
    assert colourbar.get_ylabel() == "log2 M[i, j]"


def _capture(monkeypatch):
    import ltbench.report.plots as plots

    figures = []
    monkeypatch.setattr(plots, "save", lambda fig, out, key=None, dpi=90: (figures.append(fig), out.write_bytes(b"png")))
    return figures


@pytest.fixture
def pcb2(tmp_path):
    """PCB Table 2 rendered from records: '+ PCB' rows 2 points above their baselines, PwB 2 below."""
    from support.report import fill

    from ltbench.render.tables import render_table

    def metrics(row, seed):
        gain = 2.0 if "+ PCB" in row.label else 0.0
        return {"segm.AP": 20 + gain, "segm.APr": 5 + gain, "segm.APc": 19 + gain, "segm.APf": 28 + gain,
                "bbox.AP": 21 + gain, "PwB": 12 - gain, "segm.AP1": 1, "segm.AP2": 5 + gain, "segm.AP3": 15, "segm.AP4": 25}

    fill(tmp_path / "results", metrics)
    return render_table("pcb", "2", scale="smoke", results_dir=tmp_path / "results")


def test_gain_plot_has_one_panel_per_metric_and_pwb_alone(pcb2, tmp_path, monkeypatch):
    from ltbench.report.plots import plot_gains

    figures = _capture(monkeypatch)
    assert plot_gains(pcb2.built, tmp_path / "gains.png")
    axes = [ax for ax in figures[0].axes if ax.get_visible()]
    titles = [ax.get_title() for ax in axes]
    assert len(axes) == 12 and titles[0] == "LVIS v0.5 · AP" and titles[1] == "LVIS v0.5 · AP$_{r}$"
    pwb = [ax for ax in axes if "PwB" in ax.get_title()]
    assert len(pwb) == 2 and all("lower is better" in ax.get_title() for ax in pwb)
    for ax in axes:  # reproduced gains: +2 on AP-like panels, -2 on PwB panels; labels are the method rows
        xs = [x for line in ax.get_lines() if line.get_marker() == "o" for x in line.get_xdata()]
        assert xs and set(xs) == ({-2.0} if "PwB" in ax.get_title() else {2.0}), ax.get_title()
        assert [t.get_text() for t in ax.get_yticklabels()][0] == "Softmax + PCB"


def test_reproduced_vs_reported_never_mixes_pwb_with_ap(pcb2, tmp_path, monkeypatch):
    from ltbench.report.plots import plot_reproduced_vs_reported

    figures = _capture(monkeypatch)
    assert plot_reproduced_vs_reported(pcb2.built, tmp_path / "s.png", "smoke")
    ap, pwb = figures[0].axes
    assert ap.get_title().startswith("AP-like") and pwb.get_title() == "PwB (lower is better)"
    ap_y = {round(y, 3) for c in ap.collections for _, y in c.get_offsets()}
    pwb_y = {round(y, 3) for c in pwb.collections for _, y in c.get_offsets()}
    assert pwb_y == {10.0, 12.0}  # PwB only on its own axis; the AP-like axis holds exactly the AP-like values
    assert ap_y == {20.0, 22.0, 5.0, 7.0, 19.0, 21.0, 28.0, 30.0, 23.0}
    assert sum(len(c.get_offsets()) for c in pwb.collections) == 14  # 16 rows, two cited v1.0 rows print no PwB


def test_ap_by_bin_plot_and_the_cache(pcb2, tmp_path, monkeypatch):
    import ltbench.report.plots as plots

    store = pcb2.store
    out = tmp_path / "bins.png"
    assert plots.plot_ap_by_bin(pcb2.built, store.results, out, scheme="lvis")
    assert out.is_file() and plots._key_path(out).is_file()
    figures = _capture(monkeypatch)
    assert plots.plot_ap_by_bin(pcb2.built, store.results, out, scheme="lvis") and not figures  # same data: cached
    assert plots.plot_ap_by_bin(pcb2.built, store.results, out, scheme="coco-lt") and len(figures) == 1
    left, right = figures[0].axes
    assert [t.get_text() for t in left.get_xticklabels()] == ["[1, 20)", "[20, 400)", "[400, 8000)", "[8000, ∞)"]
    assert left.get_title().startswith("LVIS v0.5") and right.get_title().startswith("LVIS v1.0")
    assert len([ln for ln in left.get_lines() if ln.get_marker() == "o"]) == 8  # one line per row
