"""Prediction of a (run, view), shared by the adapters: the flow, per-class top-k detections, grid views.

``predict_view`` is the one prediction flow; an adapter gives it a ``PredictionModel`` (its loaded model
behind three calls) and it does the rest the same way for every framework:

1. a grid view (NorCal's gamma grid) predicts each candidate and keeps the best (``predict_grid_view``);
2. the class list is the training file's (the model's output space); the evaluated split must not add any;
3. a confusion-matrix view first runs a plain pass over its ``source`` split to collect the matrix;
4. the detection pass streams ``detections.json`` image by image (``outputs.DetectionsWriter``), or in the
   AP-fixed mode keeps the ``k`` best detections of every class over the split (no per-image cap);
5. ``proposal_stats.npz`` and a summary.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from adapters.interface import Adapter, DataPaths
from adapters.records import ImageRecord, LvisSplit, load_lvis_split
from ltbench.errors import LtbenchError


#: The per-image detection limit of the per-class top-k mode: large enough to be no cap in practice.
UNCAPPED_DETECTIONS_PER_IMAGE = 1_000_000
DETECTION_MODES = ("per_image", "per_class_top_k")


def per_class_top_k(view_config: dict | None) -> int | None:
    """``k`` of a view in AP-fixed inference mode (Dave et al. 2021), else None.

    ``view_config["detections"]``: absent or ``{"mode": "per_image"}`` -- the run's per-image cap
    (``model.detections_per_img``, 300); ``{"mode": "per_class_top_k", "k": K}`` -- no per-image cap
    (score threshold unchanged, 1e-4), then the K highest-scoring detections of every category over
    the whole split (``ltbench.evaluation.ap_fixed.top_k_per_class``)."""
    spec = (view_config or {}).get("detections")
    if spec is None:
        return None
    where = str((view_config or {}).get("id", "view config"))
    if not isinstance(spec, dict) or spec.get("mode", "per_image") not in DETECTION_MODES:
        raise LtbenchError(f"unknown detections mode {spec!r}", path=where, key="detections.mode",
                           expected="{mode: per_image} or {mode: per_class_top_k, k: <int >= 1>}")
    if spec.get("mode", "per_image") == "per_image":
        return None
    from ltbench.evaluation.ap_fixed import DETS_PER_CLASS

    k = spec.get("k", DETS_PER_CLASS)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise LtbenchError(f"detections.k must be a positive integer, got {k!r}", path=where, key="detections.k",
                           expected="e.g. 10000 (Dave et al. 2021)")
    return k


def keep_top_k_per_class(detections: list[dict], k: int | None) -> list[dict]:
    """The split's detections reduced to the ``k`` best per category (None: unchanged), in their
    original (image, score) order so that detections.json stays grouped by image."""
    if k is None:
        return detections
    from ltbench.evaluation.ap_fixed import top_k_per_class

    kept = top_k_per_class(({**d, "_order": i} for i, d in enumerate(detections)), k)
    kept.sort(key=lambda d: d["_order"])
    for d in kept:
        del d["_order"]
    return kept


class StreamingTopK:
    """Drops, image by image, the detections that can no longer be among the ``k`` best of their class.

    The per-class top-k mode has no per-image cap, so a small model can score thousands of (box, class)
    pairs above 1e-4 in every image; pasting and encoding a mask for each is most of the cost. Images go
    through in split order; a detection is kept while its class has fewer than ``k`` kept scores or it
    beats the k-th best so far. Ties go to the earlier detection, as in ``keep_top_k_per_class``'s stable
    sort, so the final ``keep_top_k_per_class`` gives exactly what it gives without this filter."""

    def __init__(self, k: int) -> None:
        self.k = int(k)
        self.best: dict[int, list[float]] = {}  # class -> min-heap of the k best scores kept so far

    def __call__(self, scores: Any, labels: Any) -> list[int]:
        """scores (N,), labels (N,) of one image, in the order detections are written -> kept indices."""
        import heapq

        keep = []
        for i, (score, label) in enumerate(zip(scores.tolist(), labels.tolist())):
            heap = self.best.setdefault(int(label), [])
            if len(heap) < self.k:
                heapq.heappush(heap, score)
            elif score > heap[0]:
                heapq.heapreplace(heap, score)
            else:
                continue
            keep.append(i)
        return keep


def is_grid_view(view_config: dict) -> bool:
    """A view with a parameter grid (``gamma_grid``) selected by a metric (``select_by``): NorCal's protocol."""
    return bool((view_config or {}).get("gamma_grid"))


def predict_grid_view(adapter: Adapter, run_config: dict, view_config: dict, workdir: Path, data: DataPaths, *, split: str, out_dir: Path) -> dict:
    """Predict every ``gamma`` of ``view_config["gamma_grid"]``, evaluate each on ``split`` with the
    evaluator of record (``ltbench.evaluation.evaluate``), and keep the best by ``select_by`` (default
    ``segm.AP``; ties: the first gamma). Writes the chosen detections.json / proposal_stats.npz to
    ``out_dir``, every candidate under ``out_dir/grid/gamma_<g>/`` and ``out_dir/view_selection.json``."""
    from ltbench.evaluation import evaluate
    from ltbench.io import atomic_open, write_json

    select_by = view_config.get("select_by", "segm.AP")
    iou_type = select_by.split(".", 1)[0]
    if iou_type not in ("bbox", "segm"):
        raise LtbenchError(f"select_by {select_by!r} is not a bbox/segm metric", key="view.select_by", expected="e.g. segm.AP or bbox.AP")
    gt = Path(data.val if split == "val" else data.train)
    values: dict[str, float] = {}
    best: tuple[float, float] | None = None
    out_dir = Path(out_dir)
    fixed = {k: v for k, v in view_config.items() if k not in ("gamma_grid", "select_by")}
    for gamma in view_config["gamma_grid"]:
        candidate = out_dir / "grid" / f"gamma_{gamma}"
        view = {**fixed, "gamma": float(gamma), "id": f"{view_config.get('id', 'grid')}-g{gamma}"}
        adapter.predict(run_config, view, workdir, data, split=split, out_dir=candidate)
        metrics = evaluate(gt, candidate / "detections.json", iou_types=(iou_type,))
        if select_by not in metrics:
            raise LtbenchError(f"the evaluator gives no {select_by!r}", key="view.select_by", expected="one of " + ", ".join(sorted(metrics)))
        values[str(gamma)] = float(metrics[select_by])
        if best is None or values[str(gamma)] > best[1]:
            best = (float(gamma), values[str(gamma)])
    assert best is not None
    chosen = out_dir / "grid" / f"gamma_{_grid_label(view_config['gamma_grid'], best[0])}"
    for name in ("detections.json", "proposal_stats.npz"):
        with atomic_open(out_dir / name, "wb") as handle:
            handle.write((chosen / name).read_bytes())
    write_json(out_dir / "view_selection.json", {"select_by": select_by, "split": split, "values": values, "gamma": best[0]})
    return {"detections": str(out_dir / "detections.json"), "proposal_stats": str(out_dir / "proposal_stats.npz"),
            "view": view_config.get("id"), "selected_gamma": best[0], select_by: best[1]}


def _grid_label(grid: list, value: float) -> Any:
    for g in grid:
        if float(g) == value:
            return g
    return value




@dataclass
class ImagePrediction:
    """One image's model output in original-image pixels.

    ``boxes`` (N, 4) xyxy, ``scores`` (N,), ``classes`` (N,) class indices (train-split order); ``masks``
    (N, H, W) bool or ``rles`` (N RLE dicts) for mask detectors, else both None. ``scored_rois``: the RoIs
    the box head scored, as (rois (R, 4) xyxy, probs (R, C+1) in the adapter's background convention)
    pairs (one per head pass), for the proposal statistics.
    """

    record: ImageRecord
    boxes: Any = None
    scores: Any = None
    classes: Any = None
    masks: Any = None
    rles: list | None = None
    scored_rois: list[tuple[Any, Any]] | None = None


class PredictionModel(Protocol):
    """A trained model as ``predict_view`` uses it (each adapter wraps its framework's model)."""

    background: str
    detections_per_image: int

    def uncap(self) -> None:
        """Lift the per-image detection cap (AP-fixed mode)."""

    def set_view(self, view: Callable[[Any, Any], Any]) -> None:
        """Read the box head's probabilities through ``view`` ((head, output) -> probs)."""

    def set_detection_filter(self, keep: Callable[[Any, Any], list[int]] | None) -> bool:
        """Drop detections before their masks are made (``StreamingTopK``); False if not supported."""

    def images(self, split: LvisSplit, *, detections: bool) -> Iterator[ImagePrediction]:
        """Every image of ``split`` through the model (boxes, masks only when ``detections``)."""


def split_file(data: DataPaths, split: str) -> Path:
    if split not in ("train", "val"):
        raise LtbenchError(f"unknown split {split!r}", key="split", expected="train or val")
    return Path(data.val if split == "val" else data.train)


def predict_view(adapter: Adapter, run_config: dict, view_config: dict | None, workdir: Path, data: DataPaths, *, split: str,
                 out_dir: Path, load: Callable[[LvisSplit], PredictionModel]) -> dict:
    """The prediction flow of the module docstring; ``load(train_split)`` builds the adapter's model."""
    import numpy as np

    from adapters.engine.randomness import threads_from_env
    from adapters.outputs import DetectionsWriter, ProposalStats, detections_for_image, write_detections
    from adapters.wiring import confusion_source, view_function

    threads_from_env()
    view_config = view_config or {"id": "plain", "name": "plain"}
    if is_grid_view(view_config):
        return predict_grid_view(adapter, run_config, view_config, workdir, data, split=split, out_dir=out_dir)
    top_k = per_class_top_k(view_config)  # validated before any work
    ann = split_file(data, split)
    train_split = load_lvis_split(Path(data.train), Path(data.image_root))
    eval_split = load_lvis_split(ann, Path(data.image_root), keep_empty=True)
    unknown = sorted(set(eval_split.category_ids) - set(train_split.category_ids))
    if unknown:
        raise LtbenchError(f"{len(unknown)} categories of the {split} file are not in the training file (first: {unknown[:5]})",
                           path=ann, key="categories", expected="the same category list as the training annotations")
    model = load(train_split)
    if top_k is not None:
        model.uncap()
    category_ids = train_split.category_ids
    index = {cid: k for k, cid in enumerate(category_ids)}

    def one_pass(pass_split: LvisSplit, sink: Callable[[list[dict]], None] | None) -> ProposalStats:
        stats = ProposalStats(category_ids, model.background)
        for image in model.images(pass_split, detections=sink is not None):
            record = image.record
            gt = [index[pass_split.category_ids[k]] for k in record.classes.tolist()]
            for rois, probs in image.scored_rois or []:
                stats.add(np.asarray(rois), np.asarray(probs), record.boxes, gt)
            if sink is not None:
                sink(detections_for_image(record.image_id, image.boxes, image.scores, image.classes, category_ids, image.masks,
                                          limit=model.detections_per_image, rles=image.rles))
        return stats

    view_stats: dict[str, Any] = {"category_ids": category_ids, "instance_counts": train_split.instance_counts,
                                  "image_counts": train_split.image_counts}
    source = confusion_source(view_config)
    if source is not None:
        cm = one_pass(eval_split if source == "val" else train_split, None)
        view_stats.update({"cm_sum": cm.cm_sum, "cm_count": cm.cm_count})
    model.set_view(view_function(view_config, view_stats))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dets_path = out_dir / "detections.json"
    if top_k is None:
        writer = DetectionsWriter(dets_path)
        try:
            stats = one_pass(eval_split, writer.write)
        except BaseException:
            writer.abort()
            raise
        writer.close()
        count = writer.count
    else:
        kept: list[dict] = []
        # the streaming filter sees only this pass (not the confusion-matrix pass above)
        model.set_detection_filter(StreamingTopK(top_k))
        try:
            stats = one_pass(eval_split, kept.extend)
        finally:
            model.set_detection_filter(None)
        kept = keep_top_k_per_class(kept, top_k)
        write_detections(dets_path, kept)
        count = len(kept)
    stats_path = stats.save(out_dir / "proposal_stats.npz")
    return {"detections": str(dets_path), "proposal_stats": str(stats_path), "num_images": len(eval_split.images),
            "num_detections": count, "view": view_config.get("id", view_config.get("name", "plain"))}
