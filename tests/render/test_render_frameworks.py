"""Each rendered table says which framework trained which rows: at smoke scale torchvision serves Mask / Faster
R-CNN rows and mmdet the Cascade (Mask) R-CNN and HTC rows of the same table."""

from __future__ import annotations

from ltbench.render.tables import render_table


def test_a_table_with_cascade_rows_names_the_framework_of_each_row(tmp_path) -> None:
    markdown = render_table("disalign", "7", scale="smoke", results_dir=tmp_path).markdown
    (note,) = [line for line in markdown.splitlines() if line.startswith("Frameworks per row")]
    mmdet, torchvision = note.split("; ")
    assert mmdet.startswith("Frameworks per row: mmdet (cascade_mask_rcnn): R-50 Baseline (Cascade R-CNN)")
    assert torchvision.startswith("torchvision (mask_rcnn): R-50 Baseline (Mask R-CNN)")
    assert "Cascade" not in torchvision and "Mask R-CNN" not in mmdet


def test_a_table_of_one_framework_says_so(tmp_path) -> None:
    assert "Every run trained through torchvision." in render_table("pcb", "2", scale="smoke", results_dir=tmp_path).markdown
    override = render_table("bags", "3", scale="smoke", framework="torchvision", results_dir=tmp_path).markdown
    assert "Frameworks per row; torchvision requested: mmdet (htc): (9) HTC X101" in override
