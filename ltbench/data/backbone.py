"""The synthetic domain's "ImageNet": a ResNet-18 pre-trained once on image-level labels (``ltbench data backbone``).

Paper-scale runs start from an ImageNet-trained backbone; at ``mini`` scale the analogue is a torchvision
ResNet-18 trained to classify object-centric images of the synthetic classes, so that each detector starts
from features of its domain and converges in CPU-minutes.

What it trains on, and why:

- Object-centric images, one object each, every class equally often: ImageNet is balanced and
  object-centric, unlike the long-tailed, multi-object detection data. The detection images are never
  seen, so the backbone learns no detection-split statistics (no r/c/f prior).
- 32 x 32 pixels: the objects of the detection images are 10-27 px once resized to the detector's 96-px
  input, so the features are learnt at the scale they are used at (and a step costs a quarter of 64 px).
- Classes and looks are the synthetic preset's (``ltbench.data.synth.select_classes``), drawn by the same
  code (background, shapes, colour jitter); images are generated on the fly from one seeded stream.

Output, under ``OUT``: ``resnet18.pth`` (a torchvision ResNet-18 state dict without ``fc.*``, BatchNorm
statistics included) and ``backbone.json`` (parameters, their hash, the file's sha256, the held-out
accuracy, seconds). ``backbone.json`` is written last and is the completion marker; ``verified_path``
checks the sha256 before a run loads the file.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ltbench.data.synth import params_hash  # the same hash of a parameter dict as the synthetic data
from ltbench.errors import LtbenchError
from ltbench.io import file_sha256

BACKBONE_VERSION = 1  # bump on any change to what is trained
WEIGHTS_FILE = "resnet18.pth"
MARKER_FILE = "backbone.json"
# torchvision's detection transform normalises with the ImageNet statistics: train with the same ones.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BackboneRecipe:
    """How the backbone is trained: SGD with a one-cycle LR over ``steps`` batches of ``batch_size``."""

    data_preset: str = "smoke"
    image_size: int = 32
    steps: int = 1000
    batch_size: int = 32
    max_lr: float = 0.1
    weight_decay: float = 1e-4
    held_out_images: int = 400


RECIPES: dict[str, BackboneRecipe] = {
    "mini": BackboneRecipe(),
    "tiny": BackboneRecipe(data_preset="tiny", steps=8, batch_size=16, held_out_images=32),  # tests
}


def params_for(recipe: str, seed: int) -> dict[str, Any]:
    if recipe not in RECIPES:
        from ltbench.errors import did_you_mean

        raise LtbenchError(f"unknown backbone recipe {recipe!r}{did_you_mean(recipe, RECIPES)}", key="recipe",
                           expected=" | ".join(RECIPES))
    return {"backbone_version": BACKBONE_VERSION, "seed": int(seed), "recipe": asdict(RECIPES[recipe])}


def object_images(classes: list[Any], n: int, size: int, rng: Any) -> tuple[Any, Any]:
    """``n`` object-centric images: float tensor (n, 3, size, size), normalised; labels (n,) = class rank."""
    import numpy as np
    import torch
    from PIL import Image, ImageDraw

    from ltbench.data.shapes import shape_polygons
    from ltbench.data.synth import COLOUR_JITTER, _background

    images, labels = [], []
    for _ in range(n):
        j = int(rng.integers(len(classes)))
        canvas = Image.fromarray(np.clip(_background(size, rng), 0, 255).astype(np.uint8), "RGB")
        side = float(rng.uniform(0.3, 0.8)) * size
        aspect = float(rng.uniform(0.85, 1.15))
        w, h = min(side * aspect, size - 3.0), min(side / aspect, size - 3.0)
        cx = float(rng.uniform(w / 2 + 1, size - w / 2 - 1))
        cy = float(rng.uniform(h / 2 + 1, size - h / 2 - 1))
        jitter = rng.integers(-COLOUR_JITTER, COLOUR_JITTER + 1, size=3)
        rgb = tuple(int(v) for v in np.clip(np.array(classes[j].colour) + jitter, 0, 255))
        draw = ImageDraw.Draw(canvas)
        for poly in shape_polygons(classes[j].shape, cx, cy, w, h):
            draw.polygon(poly, fill=rgb)
        pixels = np.clip(np.asarray(canvas, dtype=np.float64) + rng.normal(0, 8, size=(size, size, 3)), 0, 255)
        images.append(pixels)
        labels.append(j)
    x = torch.tensor(np.stack(images), dtype=torch.float32).permute(0, 3, 1, 2) / 255.0
    x = (x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
    return x, torch.tensor(labels)


def _marker(out: str | Path, recipe: str, seed: int) -> dict[str, Any] | None:
    """``out``'s marker when it says the backbone was trained with these parameters, else None."""
    path = Path(out) / MARKER_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except json.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) and doc.get("params_hash") == params_hash(params_for(recipe, seed)) else None


def trained_with(out: str | Path, recipe: str = "mini", seed: int = 0) -> bool:
    """True when ``out``'s marker says its backbone was trained with these parameters (the file is not read)."""
    return _marker(out, recipe, seed) is not None


def is_complete(out: str | Path, recipe: str = "mini", seed: int = 0) -> bool:
    """True when ``out`` holds a finished backbone of these parameters whose file matches its checksum."""
    doc = _marker(out, recipe, seed)
    weights = Path(out) / WEIGHTS_FILE
    return doc is not None and weights.is_file() and doc.get("sha256") == file_sha256(weights)


def verified_path(out: str | Path) -> Path:
    """The backbone file under ``out`` after checking it against ``backbone.json``'s sha256 (a clear error if
    it is missing, unfinished or changed)."""
    marker = Path(out) / MARKER_FILE
    weights = Path(out) / WEIGHTS_FILE
    if not marker.is_file():
        raise LtbenchError("no finished synthetic backbone here", path=marker, key=MARKER_FILE,
                           expected="the marker written by `ltbench data backbone`",
                           hint=f"run: ltbench data backbone --out {Path(out)}")
    doc = json.loads(marker.read_text(encoding="utf-8"))
    if not weights.is_file() or doc.get("sha256") != file_sha256(weights):
        raise LtbenchError("the synthetic backbone does not match its checksum", path=weights, key="sha256",
                           expected=f"sha256 {doc.get('sha256')} (backbone.json)",
                           hint=f"train it again: ltbench data backbone --out {Path(out)} --force")
    return weights


def pretrain(out: str | Path, *, recipe: str = "mini", seed: int = 0, force: bool = False,
             log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train the backbone into ``out`` (skipped when an identical, verified one is there). Returns the marker."""
    import numpy as np
    import torch
    import torchvision

    from ltbench.data.synth import PRESETS, select_classes
    from ltbench.io import atomic_open, write_json

    out = Path(out)
    params = params_for(recipe, seed)
    if not force and is_complete(out, recipe, seed):
        return json.loads((out / MARKER_FILE).read_text(encoding="utf-8"))
    (out / MARKER_FILE).unlink(missing_ok=True)  # the marker goes first: an interrupted run is never "finished"
    r = RECIPES[recipe]
    classes = select_classes(PRESETS[r.data_preset])
    train_rng, held_out_rng = np.random.default_rng(np.random.SeedSequence([int(seed), BACKBONE_VERSION])).spawn(2)
    torch.manual_seed(int(seed))
    model = torchvision.models.resnet18(weights=None, num_classes=len(classes))
    optimizer = torch.optim.SGD(model.parameters(), lr=r.max_lr, momentum=0.9, weight_decay=r.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=r.max_lr, total_steps=r.steps, pct_start=0.2)
    start = time.perf_counter()
    model.train()
    for step in range(1, r.steps + 1):
        x, y = object_images(classes, r.batch_size, r.image_size, train_rng)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 50 == 0 or step == r.steps:
            elapsed = time.perf_counter() - start
            log(f"backbone step {step}/{r.steps} loss={loss.item():.4f} {elapsed / step:.2f}s/step "
                f"eta={elapsed / step * (r.steps - step):.0f}s")
    model.eval()
    x, y = object_images(classes, r.held_out_images, r.image_size, held_out_rng)
    with torch.no_grad():
        accuracy = float((model(x).argmax(1) == y).float().mean())
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}
    with atomic_open(out / WEIGHTS_FILE, "wb") as handle:
        torch.save(state, handle)
    marker = {
        "params": params, "params_hash": params_hash(params), "sha256": file_sha256(out / WEIGHTS_FILE),
        "classes": len(classes), "held_out_accuracy": round(accuracy, 4),
        "seconds": round(time.perf_counter() - start, 1), "torch": torch.__version__,
    }
    write_json(out / MARKER_FILE, marker)
    log(f"backbone: held-out accuracy {accuracy:.3f} over {len(classes)} classes ({marker['seconds']} s) -> {out / WEIGHTS_FILE}")
    return marker
