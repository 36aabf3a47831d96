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
