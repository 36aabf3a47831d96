"""The synthetic classes are learnable, and the confusable tail classes are confused with their head class.

A tiny CNN classifies object crops (boxes from the annotations) after 150 iterations on CPU: the frequent
classes must be recognised; the rare confusable classes must leak mostly onto the head class they imitate,
which is the off-diagonal mass PCB's confusion matrix is about.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ltbench.data.synth import generate

CROP = 24


def _crops(root: Path, split: str, index: dict[int, int]) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    doc = json.loads((root / "annotations" / f"lvis_v1_{split}.json").read_text())
    files = {im["id"]: im["file_name"] for im in doc["images"]}
    by_image: dict[int, list[dict]] = {}
    for a in doc["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    xs, ys = [], []
    for image_id, anns in sorted(by_image.items()):
        image = Image.open(root / "images" / files[image_id]).convert("RGB")
        for a in anns:
            x, y, w, h = a["bbox"]
            box = (int(x) - 1, int(y) - 1, int(np.ceil(x + w)) + 1, int(np.ceil(y + h)) + 1)
            xs.append(np.asarray(image.crop(box).resize((CROP, CROP), Image.BILINEAR), dtype=np.float32) / 255.0)
            ys.append(index[a["category_id"]])
    return np.stack(xs).transpose(0, 3, 1, 2), np.array(ys)


@pytest.mark.slow
def test_classes_learnable_and_confusable_pairs_confused(tmp_path: Path) -> None:
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(1)
    root = tmp_path / "synth"
    generate(root, seed=0, preset="smoke")
    manifest = json.loads((root / "manifest.json").read_text())
    cats = sorted(c["v1_id"] for c in manifest["classes"])
    index = {cid: k for k, cid in enumerate(cats)}
    rank_to_index = {c["rank"]: index[c["v1_id"]] for c in manifest["classes"]}
    x_train, y_train = _crops(root, "train", index)
    x_val, y_val = _crops(root, "val", index)

    C = len(cats)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(32 * 6 * 6, C),
    )
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    gen = torch.Generator().manual_seed(0)
    for _ in range(150):
        batch = torch.randint(0, len(yt), (64,), generator=gen)
        loss = torch.nn.functional.cross_entropy(model(xt[batch]), yt[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = model(torch.from_numpy(x_val)).argmax(1).numpy()

    frequent = {index[c["v1_id"]] for c in manifest["classes"] if c["train_image_count"] > 100}
    mask_f = np.isin(y_val, list(frequent))
    acc_f = float((pred[mask_f] == y_val[mask_f]).mean())
    acc = float((pred == y_val).mean())
    print(f"crop accuracy after 150 iterations: all {acc:.3f}, frequent {acc_f:.3f}")
    assert acc_f > 0.9, f"frequent-class crop accuracy {acc_f:.3f} after 150 iterations"

    leaked_to_head = total = 0
    for c in manifest["classes"]:
        if c["confusable_with_rank"] is None:
            continue
        rows = y_val == index[c["v1_id"]]
        wrong = pred[rows][pred[rows] != index[c["v1_id"]]]
        leaked_to_head += int((wrong == rank_to_index[c["confusable_with_rank"]]).sum())
        total += int(len(wrong))
    print(f"confusable tail errors landing on their head class: {leaked_to_head}/{total}")
    assert total > 0 and leaked_to_head / total > 0.5, (leaked_to_head, total)
