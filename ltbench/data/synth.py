"""Synthetic long-tailed LVIS-format dataset (``ltbench data synth``).

What it makes, under ``OUT``::

    images/train/000001.png ...     RGB PNGs, ``image_size`` x ``image_size``
    images/val/...
    annotations/lvis_v0.5_{train,val}.json   v0.5 category ids and names
    annotations/lvis_v1_{train,val}.json     v1.0 category ids and names (same images and instances)
    manifest.json                   parameters, their hash and the sha256 of every annotation file

Design (each choice serves a method the benchmark must be able to show an effect for):

- Classes are real LVIS categories (name, synset, ids in both versions), picked at evenly spaced ranks of
  LVIS v1's real training image counts, so the r/c/f mix is LVIS's (about 28/38/34 %). Their synthetic
  training image counts keep the real count where it is <= 100 (rare and common classes keep their exact
  LVIS count) and compress frequent classes' counts logarithmically into ``(100, frequent_max]``; the
  r/c/f thresholds are LVIS's (r <= 10 images, c 11-100, f > 100) and hold on the generated counts.
- Every class is a distinct (shape, colour) pair drawn on a noisy background, so a small CNN can learn it.
  A few tail classes (``num_confusable``) copy a head class's shape with a close colour, so a confusion
  matrix has off-diagonal mass between head and tail (what PCB calibrates).
- The top class has several instances per image (over 1000 instances at smoke scale), so instance-count
  groups up to ``>= 1000`` (BAGS) and ``>= 8000``-style bins are exercised as far as the size allows.
- Federated annotation as in LVIS: each image lists ``neg_category_ids`` (classes verified absent) and
  ``not_exhaustive_category_ids`` (classes of which one drawn instance is deliberately left unannotated).
  Every class appears in val, so APr is defined.
- Deterministic: the same seed and preset give byte-identical files (numpy PCG64 streams, sorted JSON).

Class-index order everywhere in ltbench is ascending category id (not the rank order used here).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ltbench.data.shapes import SHAPES, polygon_area, shape_polygons
from ltbench.errors import LtbenchError

GENERATOR_VERSION = 1

# Saturated colours, far apart in RGB, all readable on the grey noisy background.
PALETTE: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("red", (220, 40, 40)),
    ("green", (40, 180, 60)),
    ("blue", (45, 75, 230)),
    ("yellow", (235, 215, 40)),
    ("magenta", (210, 50, 210)),
    ("cyan", (40, 210, 220)),
)
# A confusable tail class takes its head class's shape and this colour shift (bigger than the per-instance
# jitter of +-12, so the classes stay separable, but small enough to be confused early in training).
CONFUSABLE_SHIFT = (0, 60, 60)
COLOUR_JITTER = 12


@dataclass(frozen=True)
class SynthPreset:
    """Size of a synthetic dataset.

    ``frequent_max`` is the largest training image count a frequent class gets, as a fraction of
    ``train_images``; ``top_class_instances`` the mean number of instances per image of the most
    frequent class (the others have about 1-1.5).
    """

    name: str
    num_classes: int
    train_images: int
    val_images: int
    image_size: int
    frequent_max: float
    num_confusable: int
    top_class_instances: float


PRESETS: dict[str, SynthPreset] = {
    "smoke": SynthPreset("smoke", 40, 600, 120, 128, 0.45, 3, 4.0),
    "tiny": SynthPreset("tiny", 12, 130, 30, 128, 0.9, 2, 2.0),
}


@dataclass(frozen=True)
class SynthClass:
    """One synthetic class: a real LVIS category drawn as a (shape, colour)."""

    rank: int  # 0 = most frequent
    v1_id: int
    v1_name: str
    synset: str
    v05_id: int
    v05_name: str
    real_image_count: int
    target_train_images: int
    target_val_images: int
    shape: str
    colour_name: str
    colour: tuple[int, int, int]
    confusable_with: int | None  # rank of the head class it imitates


def lvis_frequency(image_count: int) -> str:
    """LVIS frequency group of a class from its number of training images: r <= 10, c 11-100, f > 100."""
    if image_count <= 10:
        return "r"
    if image_count <= 100:
        return "c"
    return "f"


def _target_train_images(real: int, preset: SynthPreset, real_max: int) -> int:
    if real <= 100:
        return min(real, preset.train_images)
    top = max(102, int(preset.frequent_max * preset.train_images))
    fraction = math.log(real / 100.0) / math.log(max(real_max, 101) / 100.0)
    return min(top, 101 + int(round(fraction * (top - 101))))


def select_classes(preset: SynthPreset) -> list[SynthClass]:
    """The preset's classes in rank order (most frequent first), with targets and looks.

    Seed-independent: a preset always has the same classes; the seed changes only the images.
    """
    from ltbench.data.lvis_category_table import LVIS_CATEGORY_TABLE

    rows = sorted(LVIS_CATEGORY_TABLE, key=lambda r: (-r[3], r[0]))
    k = preset.num_classes
    if not 2 <= k <= min(len(rows), len(SHAPES) * len(PALETTE)):
        raise LtbenchError(f"num_classes={k} out of range", key="num_classes", expected="2..48")
    picks = [rows[round(j * (len(rows) - 1) / (k - 1))] for j in range(k)]
    real_max = picks[0][3]

    import numpy as np

    looks_rng = np.random.default_rng(20240601)  # fixed: looks do not depend on the data seed
    combos = [(s, c) for s in range(len(SHAPES)) for c in range(len(PALETTE))]
    order = looks_rng.permutation(len(combos))
    # Confusable tail classes: the rarest `num_confusable` tail (r/c) classes outside the tail's most
    # frequent third, paired with the head classes of rank 0, 1, 2, ...
    tail_ranks = [j for j in range(k) if picks[j][3] <= 100]
    confusable = {}
    for i, j in enumerate(reversed(tail_ranks[len(tail_ranks) // 3 :])):
        if i >= preset.num_confusable:
            break
        confusable[j] = i
    classes = []
    next_combo = 0
    used_combos: set[tuple[int, int]] = set()
    looks: dict[int, tuple[str, str, tuple[int, int, int]]] = {}
    for j in range(k):
        if j in confusable:
            continue
        while True:
            combo = combos[int(order[next_combo])]
            next_combo += 1
            if combo not in used_combos:
                break
        used_combos.add(combo)
        name, rgb = PALETTE[combo[1]]
        looks[j] = (SHAPES[combo[0]], name, rgb)
    for j, head in confusable.items():
        shape, name, rgb = looks[head]
        shifted = tuple(int(min(255, max(0, v + d if v < 128 else v - d))) for v, d in zip(rgb, CONFUSABLE_SHIFT))
        looks[j] = (shape, f"{name}-like", shifted)  # type: ignore[assignment]
    for j, row in enumerate(picks):
        v1_id, v1_name, synset, real_count, v05_id, v05_name = row
        train_n = _target_train_images(real_count, preset, real_max)
        val_n = max(2, int(round(train_n * preset.val_images / preset.train_images)))
        shape, colour_name, rgb = looks[j]
        classes.append(
            SynthClass(
                rank=j, v1_id=v1_id, v1_name=v1_name, synset=synset, v05_id=v05_id, v05_name=v05_name,
                real_image_count=real_count, target_train_images=train_n,
                target_val_images=min(val_n, preset.val_images), shape=shape, colour_name=colour_name,
                colour=rgb, confusable_with=confusable.get(j),
            )
        )
    return classes


def _assign_images(counts: list[int], n_images: int, rng: Any) -> list[list[int]]:
    """Which classes each image contains: class j in exactly counts[j] distinct images.

    Classes are placed most-frequent first, each into the images holding the fewest classes so far
    (random tie-break), which keeps every image drawable at 128 px.
    """
    import numpy as np

    load = np.zeros(n_images, dtype=np.int64)
    members: list[list[int]] = [[] for _ in range(n_images)]
    for j in sorted(range(len(counts)), key=lambda j: (-counts[j], j)):
        tie = rng.random(n_images)
        chosen = np.lexsort((tie, load))[: counts[j]]
        for i in sorted(chosen.tolist()):
            members[i].append(j)
            load[i] += 1
    return members


def _place(sizes: list[tuple[float, float]], size: int, rng: Any) -> list[tuple[float, float, float, float]] | None:
    """Non-overlapping boxes (x0, y0, w, h) with a 1 px gap, for the given (w, h); None where impossible."""
    boxes: list[tuple[float, float, float, float]] = []
    for w, h in sizes:
        for _ in range(60):
            x0 = float(rng.uniform(1, size - w - 1))
            y0 = float(rng.uniform(1, size - h - 1))
            if all(x0 + w + 1 <= bx or bx + bw + 1 <= x0 or y0 + h + 1 <= by or by + bh + 1 <= y0 for bx, by, bw, bh in boxes):
                boxes.append((x0, y0, w, h))
                break
        else:
            return None
    return boxes


def _background(size: int, rng: Any) -> Any:
    import numpy as np

    base = rng.uniform(95, 150) + rng.uniform(-15, 15, size=3)
    gy, gx = np.mgrid[0:size, 0:size] / size
    gradient = (rng.uniform(-25, 25) * gx + rng.uniform(-25, 25) * gy)[..., None]
    noise = rng.normal(0, 18, size=(size, size, 3))
    return base[None, None, :] + gradient + noise


@dataclass
class _Instance:
    cls: int
    polygons: list[list[tuple[float, float]]]
    annotated: bool


def _draw_image(classes: list[SynthClass], members: list[int], preset: SynthPreset, rng: Any) -> tuple[Any, list[_Instance], set[int]]:
    """Render one image. Returns (uint8 array (H, W, 3), instances, not-exhaustive class ranks)."""
    import numpy as np
    from PIL import Image, ImageDraw

    size = preset.image_size
    # Instances per present class: 1 + extra; the top class is crowd-like.
    wanted: list[int] = []
    for j in members:
        mean_extra = preset.top_class_instances - 1 if j == 0 else (0.4 if lvis_frequency(classes[j].target_train_images) == "f" else 0.15)
        wanted.extend([j] * (1 + min(7, int(rng.poisson(mean_extra)))))
    order = rng.permutation(len(wanted))
    wanted = [wanted[i] for i in order]
    # Required first instances go first so they are never dropped.
    seen: set[int] = set()
    required, extra = [], []
    for j in wanted:
        (extra if j in seen else required).append(j)
        seen.add(j)
    boxes = None
    items = required + extra
    scale = min(1.0, 0.95 * size / (math.sqrt(len(items)) * 36.0))
    for attempt in range(12):
        sizes = []
        for _ in items:
            side = float(rng.uniform(14, 36)) * scale * (0.9**attempt)
            side = max(side, 8.0)
            aspect = float(rng.uniform(0.85, 1.15))
            sizes.append((side * aspect, side / aspect))
        boxes = _place(sizes, size, rng)
        if boxes is not None:
            break
        if attempt >= 6 and extra:  # give up extra instances before shrinking further
            extra = extra[: len(extra) // 2]
            items = required + extra
    if boxes is None:
        raise RuntimeError("synthetic layout failed; reduce classes per image")  # not reachable at preset sizes

    pixels = np.clip(_background(size, rng), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(image)
    instances: list[_Instance] = []
    for j, (x0, y0, w, h) in zip(items, boxes):
        polys = shape_polygons(classes[j].shape, x0 + w / 2, y0 + h / 2, w, h)
        polys = [[(round(x, 2), round(y, 2)) for x, y in poly] for poly in polys]
        jitter = rng.integers(-COLOUR_JITTER, COLOUR_JITTER + 1, size=3)
        rgb = tuple(int(v) for v in np.clip(np.array(classes[j].colour) + jitter, 0, 255))
        for poly in polys:
            draw.polygon(poly, fill=rgb)
        instances.append(_Instance(j, polys, True))
    # Not exhaustive: for a class with >= 2 instances here, sometimes leave one unannotated (as LVIS does).
    not_exhaustive: set[int] = set()
    by_class: dict[int, list[int]] = {}
    for idx, inst in enumerate(instances):
        by_class.setdefault(inst.cls, []).append(idx)
    for j in sorted(by_class):
        if len(by_class[j]) >= 2 and rng.random() < 0.15:
            instances[by_class[j][-1]].annotated = False
            not_exhaustive.add(j)
    arr = np.asarray(image, dtype=np.float64) + rng.normal(0, 8, size=(size, size, 3))
    return np.clip(arr, 0, 255).astype(np.uint8), instances, not_exhaustive


def _negatives(members: list[list[int]], num_classes: int, rng: Any) -> list[list[int]]:
    """Per image, the classes verified absent: for each class, up to max(4, #positive images) images
    without it (at most 25), like LVIS's per-category negative sets."""
    import numpy as np

    negatives: list[list[int]] = [[] for _ in members]
    for j in range(num_classes):
        absent = [i for i, m in enumerate(members) if j not in m]
        positives = len(members) - len(absent)
        n = min(len(absent), 25, max(4, positives))
        for i in sorted(rng.choice(np.array(absent, dtype=np.int64), size=n, replace=False).tolist()) if n else []:
            negatives[i].append(j)
    return negatives


def params_for(preset: str, seed: int) -> dict[str, Any]:
    """The parameters that determine the generated bytes (their hash names the dataset in the manifest)."""
    if preset not in PRESETS:
        from ltbench.errors import did_you_mean

        raise LtbenchError(f"unknown preset {preset!r}{did_you_mean(preset, PRESETS)}", key="preset", expected=" | ".join(PRESETS))
    return {"generator_version": GENERATOR_VERSION, "seed": int(seed), "preset": asdict(PRESETS[preset])}


def params_hash(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


ANNOTATION_FILES = ("lvis_v0.5_train.json", "lvis_v0.5_val.json", "lvis_v1_train.json", "lvis_v1_val.json")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def is_complete(out: str | Path, preset: str = "smoke", seed: int = 0) -> bool:
    """True when ``out`` holds a finished dataset generated with these parameters (manifest and files)."""
    out = Path(out)
    manifest_path = out / "manifest.json"
    if not manifest_path.is_file():
        return False
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return False
    if manifest.get("params_hash") != params_hash(params_for(preset, seed)):
        return False
    for name, digest in manifest.get("annotation_sha256", {}).items():
        path = out / "annotations" / name
        if not path.is_file() or _sha256(path) != digest:
            return False
    return all((out / "images" / rel).is_file() for rel in manifest.get("images", []))


@dataclass
class SynthResult:
    out: Path
    skipped: bool
    params_hash: str
    num_train_images: int
    num_val_images: int
    num_classes: int


def generate(out: str | Path, *, seed: int = 0, preset: str = "smoke", force: bool = False) -> SynthResult:
    """Write the synthetic dataset under ``out`` (skipped when an identical one is already there)."""
    import numpy as np

    from ltbench.io import atomic_open, write_json

    out = Path(out)
    params = params_for(preset, seed)
    digest = params_hash(params)
    p = PRESETS[preset]
    if not force and is_complete(out, preset, seed):
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
        return SynthResult(out, True, digest, manifest["num_train_images"], manifest["num_val_images"], p.num_classes)

    classes = select_classes(p)
    root_rng = np.random.default_rng(np.random.SeedSequence([int(seed), GENERATOR_VERSION]))
    split_rngs = dict(zip(("train", "val"), root_rng.spawn(2)))
    images_meta: dict[str, list[dict[str, Any]]] = {}
    anns: dict[str, list[dict[str, Any]]] = {}
    image_rel_paths: list[str] = []
    next_image_id = 1
    next_ann_id = 1
    for split, n_images, targets in (
        ("train", p.train_images, [c.target_train_images for c in classes]),
        ("val", p.val_images, [c.target_val_images for c in classes]),
    ):
        rng = split_rngs[split]
        members = _assign_images(targets, n_images, rng)
        negatives = _negatives(members, len(classes), rng)
        images_meta[split], anns[split] = [], []
        for i in range(n_images):
            pixels, instances, not_exhaustive = _draw_image(classes, members[i], p, rng)
            rel = f"{split}/{next_image_id:06d}.png"
            from PIL import Image

            with atomic_open(out / "images" / rel, "wb") as handle:
                Image.fromarray(pixels, "RGB").save(handle, format="PNG", optimize=False)
            image_rel_paths.append(rel)
            images_meta[split].append({
                "id": next_image_id,
                "file_name": rel,
                "coco_url": f"http://images.synthetic.invalid/{rel}",
                "height": p.image_size,
                "width": p.image_size,
                "neg_category_ids": sorted(negatives[i]),  # ranks for now; mapped per version below
                "not_exhaustive_category_ids": sorted(not_exhaustive),
            })
            for inst in instances:
                if not inst.annotated:
                    continue
                xs = [x for poly in inst.polygons for x, _ in poly]
                ys = [y for poly in inst.polygons for _, y in poly]
                x0, y0 = min(xs), min(ys)
                anns[split].append({
                    "id": next_ann_id,
                    "image_id": next_image_id,
                    "category_id": inst.cls,  # rank for now
                    "bbox": [round(x0, 2), round(y0, 2), round(max(xs) - x0, 2), round(max(ys) - y0, 2)],
                    "area": round(sum(polygon_area(poly) for poly in inst.polygons), 2),
                    "segmentation": [[c for xy in poly for c in xy] for poly in inst.polygons],
                })
                next_ann_id += 1
            next_image_id += 1

    # Training statistics (category metadata of both splits' files, as in LVIS).
    image_count = [0] * len(classes)
    instance_count = [0] * len(classes)
    seen: set[tuple[int, int]] = set()
    for a in anns["train"]:
        instance_count[a["category_id"]] += 1
        if (a["image_id"], a["category_id"]) not in seen:
            seen.add((a["image_id"], a["category_id"]))
            image_count[a["category_id"]] += 1

    annotation_digests: dict[str, str] = {}
    for version in ("v0.5", "v1"):
        cat_id = {c.rank: (c.v05_id if version == "v0.5" else c.v1_id) for c in classes}
        categories = []
        for c in sorted(classes, key=lambda c: cat_id[c.rank]):
            name = c.v05_name if version == "v0.5" else c.v1_name
            categories.append({
                "id": cat_id[c.rank],
                "name": name,
                "synset": c.synset,
                "synonyms": [name],
                "def": f"synthetic: {c.colour_name} {c.shape}"
                + (f" (confusable with {classes[c.confusable_with].v1_name})" if c.confusable_with is not None else ""),
                "frequency": lvis_frequency(image_count[c.rank]),
                "image_count": image_count[c.rank],
                "instance_count": instance_count[c.rank],
            })
        for split in ("train", "val"):
            doc = {
                "info": {
                    "description": f"ltbench synthetic long-tailed LVIS {version}-like dataset ({split})",
                    "version": version,
                    "generator": f"ltbench.data.synth v{GENERATOR_VERSION}",
                    "preset": preset,
                    "seed": int(seed),
                    "params_hash": digest,
                },
                "licenses": [],
                "categories": categories,
                "images": [
                    {
                        **im,
                        "neg_category_ids": sorted(cat_id[j] for j in im["neg_category_ids"]),
                        "not_exhaustive_category_ids": sorted(cat_id[j] for j in im["not_exhaustive_category_ids"]),
                    }
                    for im in images_meta[split]
                ],
                "annotations": [{**a, "category_id": cat_id[a["category_id"]]} for a in anns[split]],
            }
            name = f"lvis_{version}_{split}.json"
            path = out / "annotations" / name
            write_json(path, doc, indent=None)
            annotation_digests[name] = _sha256(path)

    write_json(out / "manifest.json", {
        "params": params,
        "params_hash": digest,
        "num_train_images": p.train_images,
        "num_val_images": p.val_images,
        "annotation_sha256": annotation_digests,
        "classes": [
            {"rank": c.rank, "v1_id": c.v1_id, "v0.5_id": c.v05_id, "name": c.v1_name, "shape": c.shape,
             "colour": c.colour_name, "rgb": list(c.colour), "confusable_with_rank": c.confusable_with,
             "train_image_count": image_count[c.rank], "train_instance_count": instance_count[c.rank]}
            for c in classes
        ],
        "images": image_rel_paths,
    })
    return SynthResult(out, False, digest, p.train_images, p.val_images, len(classes))
