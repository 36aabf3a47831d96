"""Per-proposal statistics on val: the soft confusion matrix (PCB Eq. 3), PwB, and proposal
classification accuracy (BAGS Table 1).

Matching rule (a named assumption: no official PwB code exists; it is the R-CNN assignment rule that
PCB's training statistics use): a proposal whose best IoU with a ground-truth box is >= 0.5 takes that
box's class; any other proposal is background.

Class indices are 0-based foreground indices in ascending LVIS category-id order; background is -1 in
``cls_pred`` / ``cls_target`` whatever the framework's convention (see :func:`labels_to_class_index`).

``proposal_stats.npz`` (written by adapters through :func:`accumulate` / :class:`ProposalStatsAccumulator`
and :func:`save_proposal_stats`):

- ``category_ids`` (C,) int64: LVIS category ids in class-index order
- ``cm_sum`` (C, C) float64: row = GT class, column = predicted class; the sum over matched proposals of
  the softmax over the C foreground logits (background excluded)
- ``cm_count`` (C,) int64: matched proposals per GT class
- ``cls_pred`` (M,) int64, ``cls_target`` (M,) int64: predicted class index (argmax over C+1) and the
  assigned label, -1 = background, for every scored proposal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from os import PathLike
from typing import Any

from ltbench.errors import LtbenchError

NPZ_KEYS = ("category_ids", "cm_sum", "cm_count", "cls_pred", "cls_target")


def _numpy(x: Any) -> Any:
    """numpy view of a numpy array, a torch tensor (any device) or a sequence."""
    import numpy as np

    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def labels_to_class_index(labels: Any, num_classes: int, background: str) -> Any:
    """Labels (M,) in a framework's convention ("first": bg = 0, fg 1..C; "last": fg 0..C-1, bg = C)
    -> class indices (M,) int64 with -1 = background."""
    import numpy as np

    labels = _numpy(labels).astype(np.int64)
    if background == "first":
        return labels - 1
    if background == "last":
        return np.where(labels == num_classes, -1, labels)
    raise ValueError(f"background must be 'first' or 'last', got {background!r}")


def accumulate(fg_probs: Any, gt_class: Any, pred_all: Any, target_all: Any, num_classes: int, *,
               background: str | None = None, category_ids: Sequence[int] | None = None) -> dict[str, Any]:
    """Per-proposal statistics of one batch (or of a whole split) as the arrays of ``proposal_stats.npz``.

    Args:
        fg_probs: (N, C) softmax over the C foreground logits (background excluded) of the proposals
            matched to a GT box (IoU >= 0.5).
        gt_class: (N,) class index 0..C-1 of each matched proposal's GT box.
        pred_all: (M,) predicted label (argmax over C+1) of every scored proposal.
        target_all: (M,) assigned label of every scored proposal.
        num_classes: C.
        background: ``None`` when ``pred_all``/``target_all`` already are class indices with -1 =
            background; "first" or "last" to convert them from that convention.
        category_ids: (C,) LVIS category ids in class-index order, stored as ``category_ids``
            (default: 1..C).

    Returns: {"category_ids" (C,), "cm_sum" (C, C) float64, "cm_count" (C,) int64,
    "cls_pred" (M,) int64, "cls_target" (M,) int64}.
    """
    import numpy as np

    C = int(num_classes)
    probs = _numpy(fg_probs).astype(np.float64, copy=False)
    gt = _numpy(gt_class).astype(np.int64).reshape(-1)
    if probs.size == 0 and gt.size == 0:
        probs = probs.reshape(0, C)  # a batch without matched proposals
    if probs.ndim != 2 or probs.shape[1] != C or probs.shape[0] != gt.shape[0]:
        raise ValueError(f"fg_probs must be (N, {C}) with N = len(gt_class) = {gt.shape[0]}, got {probs.shape}")
    if gt.size and (gt.min() < 0 or gt.max() >= C):
        raise ValueError(f"gt_class must hold class indices 0..{C - 1}, got range [{gt.min()}, {gt.max()}]")
    pred = _numpy(pred_all).astype(np.int64).reshape(-1)
    target = _numpy(target_all).astype(np.int64).reshape(-1)
    if background is not None:
        pred = labels_to_class_index(pred, C, background)
        target = labels_to_class_index(target, C, background)
    if pred.shape != target.shape:
        raise ValueError(f"pred_all {pred.shape} and target_all {target.shape} must have the same length")
    for name, arr in (("pred_all", pred), ("target_all", target)):
        if arr.size and (arr.min() < -1 or arr.max() >= C):
            raise ValueError(f"{name} must hold class indices -1..{C - 1} after conversion, "
                             f"got range [{arr.min()}, {arr.max()}]")
    cm_sum = np.zeros((C, C), dtype=np.float64)
    np.add.at(cm_sum, gt, probs)
    cm_count = np.bincount(gt, minlength=C).astype(np.int64)
    cat = np.arange(1, C + 1, dtype=np.int64) if category_ids is None else _numpy(category_ids).astype(np.int64)
    if cat.shape != (C,):
        raise ValueError(f"category_ids must have length {C}, got {cat.shape}")
    return {"category_ids": cat, "cm_sum": cm_sum, "cm_count": cm_count, "cls_pred": pred, "cls_target": target}


class ProposalStatsAccumulator:
    """Sums :func:`accumulate` over batches; ``result()`` gives the npz arrays, ``save(path)`` writes them."""

    def __init__(self, num_classes: int, category_ids: Sequence[int] | None = None, background: str | None = None):
        import numpy as np

        self.num_classes = int(num_classes)
        self.background = background
        self.category_ids = category_ids
        self.cm_sum = np.zeros((self.num_classes, self.num_classes))
        self.cm_count = np.zeros(self.num_classes, dtype=np.int64)
        self._pred: list[Any] = []
        self._target: list[Any] = []

    def update(self, fg_probs: Any, gt_class: Any, pred_all: Any, target_all: Any) -> None:
        part = accumulate(fg_probs, gt_class, pred_all, target_all, self.num_classes,
                          background=self.background, category_ids=self.category_ids)
        self.cm_sum += part["cm_sum"]
        self.cm_count += part["cm_count"]
        self._pred.append(part["cls_pred"])
        self._target.append(part["cls_target"])
        self.category_ids = part["category_ids"]

    def result(self) -> dict[str, Any]:
        import numpy as np

        empty = np.zeros(0, dtype=np.int64)
        cat = (np.arange(1, self.num_classes + 1, dtype=np.int64) if self.category_ids is None
               else np.asarray(self.category_ids, dtype=np.int64))
        return {"category_ids": cat, "cm_sum": self.cm_sum.copy(), "cm_count": self.cm_count.copy(),
                "cls_pred": np.concatenate(self._pred) if self._pred else empty,
                "cls_target": np.concatenate(self._target) if self._target else empty}

    def save(self, path: str | PathLike[str]) -> None:
        save_proposal_stats(path, self.result())


def save_proposal_stats(path: str | PathLike[str], stats: Mapping[str, Any]) -> None:
    """Write the arrays atomically as ``.npz`` (uncompressed)."""
    import numpy as np

    from ltbench.io import atomic_open

    missing = [k for k in NPZ_KEYS if k not in stats]
    if missing:
        raise ValueError(f"proposal stats lack {missing}")
    with atomic_open(path, "wb") as handle:
        np.savez(handle, **{k: np.asarray(stats[k]) for k in NPZ_KEYS})


def load_proposal_stats(path: str | PathLike[str]) -> dict[str, Any]:
    """Read and check a ``proposal_stats.npz`` (keys, dtypes, shapes, index ranges)."""
    import zipfile

    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise LtbenchError("file not found", path=path, expected="a proposal_stats.npz written by "
                           "ltbench predict") from None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise LtbenchError(f"not a readable .npz file ({exc})", path=path,
                           expected="a complete proposal_stats.npz") from None
    for key in NPZ_KEYS:
        if key not in data:
            raise LtbenchError(f"missing array {key!r}", path=path, key=key, expected=", ".join(NPZ_KEYS))
    cat, cm_sum, cm_count = data["category_ids"], data["cm_sum"], data["cm_count"]
    C = cat.shape[0] if cat.ndim == 1 else -1
    if C < 1:
        raise LtbenchError(f"category_ids has shape {cat.shape}", path=path, key="category_ids", expected="(C,)")
    if cm_sum.shape != (C, C):
        raise LtbenchError(f"cm_sum has shape {cm_sum.shape}", path=path, key="cm_sum", expected=f"({C}, {C})")
    if cm_count.shape != (C,) or (cm_count < 0).any():
        raise LtbenchError(f"cm_count has shape {cm_count.shape} or negative entries", path=path,
                           key="cm_count", expected=f"({C},) non-negative counts")
    pred, target = data["cls_pred"], data["cls_target"]
    if pred.ndim != 1 or pred.shape != target.shape:
        raise LtbenchError(f"cls_pred {pred.shape} and cls_target {target.shape} differ", path=path,
                           key="cls_pred", expected="two (M,) arrays of the same length")
    for key, arr in (("cls_pred", pred), ("cls_target", target)):
        if not np.issubdtype(arr.dtype, np.integer) or (arr.size and (arr.min() < -1 or arr.max() >= C)):
            raise LtbenchError(f"holds values outside -1..{C - 1}", path=path, key=key,
                               expected="class indices, -1 = background")
    return data


def soft_confusion_matrix(cm_sum: Any, cm_count: Any) -> Any:
    """PCB Eq. 3: M[i, j] = mean over proposals of GT class i of their probability of class j.

    (C, C) float64, rows normalised by their count; a row without samples is all zeros.
    """
    import numpy as np

    cm_sum = np.asarray(cm_sum, dtype=np.float64)
    count = np.asarray(cm_count, dtype=np.float64).reshape(-1, 1)
    out = np.zeros_like(cm_sum)
    np.divide(cm_sum, count, out=out, where=count > 0)
    return out


def pairwise_bias(M: Any) -> float:
    """PwB = ||M - M^T||_F, the Frobenius norm of the confusion matrix's asymmetry (0 when balanced)."""
    import numpy as np

    M = np.asarray(M, dtype=np.float64)
    return float(np.linalg.norm(M - M.T, ord="fro"))


def proposal_accuracy(cls_pred: Any, cls_target: Any, class_bins: Sequence[int] | None = None,
                      num_bins: int = 4) -> dict[str, float]:
    """BAGS Table 1: proposal classification accuracy in percent.

    ``ACC`` over all proposals (foreground and background), ``ACCbg`` over background proposals
    (target -1), ``ACC1..ACC4`` over foreground proposals whose target class is in bin b
    (``class_bins[k]`` = bin 0..3 of class index k, -1 = none). -1 where a group has no proposal.
    """
    import numpy as np

    pred = np.asarray(cls_pred, dtype=np.int64)
    target = np.asarray(cls_target, dtype=np.int64)
    correct = pred == target

    def acc(mask: Any) -> float:
        n = int(mask.sum())
        return -1.0 if n == 0 else 100.0 * float(correct[mask].sum()) / n

    out = {"ACC": acc(np.ones_like(correct)), "ACCbg": acc(target == -1)}
    if class_bins is not None:
        bins = np.asarray(class_bins, dtype=np.int64)
        target_bin = np.where(target >= 0, bins[np.clip(target, 0, None)], -1)
        for b in range(num_bins):
            out[f"ACC{b + 1}"] = acc(target_bin == b)
    return out


def proposal_metrics(path: str | PathLike[str], train_counts: Mapping[int, int] | None = None,
                     bins: str = "lvis") -> dict[str, float]:
    """``PwB`` and ``cls.ACC*`` of a proposal_stats.npz (ACC1..4 only when ``train_counts`` is given)."""
    from ltbench.evaluation.bins import BIN_SCHEMES, bins_of

    data = load_proposal_stats(path)
    M = soft_confusion_matrix(data["cm_sum"], data["cm_count"])
    out = {"PwB": pairwise_bias(M)}
    class_bins = None
    if train_counts is not None:
        class_bins = bins_of([int(c) for c in data["category_ids"]], train_counts, bins)
    acc = proposal_accuracy(data["cls_pred"], data["cls_target"], class_bins, len(BIN_SCHEMES[bins]))
    out.update({f"cls.{k}": v for k, v in acc.items()})
    return out


def short_name(name: str, limit: int = 28) -> str:
    """A category name for a tick label: at most ``limit`` characters (``monitor_(computer_equipment)…``)."""
    name = str(name)
    return name if len(name) <= limit else name[: limit - 1] + "…"


def plot_confusion_heatmap(M: Any, names: Sequence[str], out_path: str | PathLike[str], *,
                           num_classes: int = 10, seed: int = 0, classes: Sequence[int] | None = None,
                           title: str | None = None) -> list[int]:
    """PCB Fig. 1: log2 of the soft confusion matrix over a random sample of classes, as a heatmap.

    Samples ``num_classes`` of the classes that have samples (non-zero rows) unless ``classes`` names
    them; zeros are shown at the smallest positive value. Returns the class indices drawn.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    M = np.asarray(M, dtype=np.float64)
    if classes is None:
        candidates = np.flatnonzero(M.sum(axis=1) > 0)
        if candidates.size == 0:
            raise LtbenchError("the confusion matrix has no rows with samples", expected="at least one matched proposal")
        rng = np.random.default_rng(seed)
        classes = sorted(rng.choice(candidates, size=min(num_classes, candidates.size), replace=False).tolist())
    classes = [int(c) for c in classes]
    sub = M[np.ix_(classes, classes)]
    floor = sub[sub > 0].min() if (sub > 0).any() else 1e-12
    logm = np.log2(np.maximum(sub, floor))
    labels = [short_name(names[c], 36) for c in classes]
    # room for the longest label: constrained layout places the tick labels and the colour bar (with its label)
    # inside the figure instead of clipping them
    label_in = 0.09 * max(len(label) for label in labels)
    cell_in = 0.36
    fig, ax = plt.subplots(figsize=(2.2 + label_in + cell_in * len(classes), 1.2 + label_in + cell_in * len(classes)),
                           layout="constrained")
    im = ax.imshow(logm, cmap="viridis")
    ax.set_xticks(range(len(classes)), labels, rotation=90, fontsize=8)
    ax.set_yticks(range(len(classes)), labels, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("ground-truth class")
    ax.set_title(title or "log2 soft confusion matrix", fontsize=10)
    fig.colorbar(im, ax=ax, label="log2 M[i, j]", shrink=0.9)
    from ltbench.evaluation.plots import save_figure

    save_figure(fig, out_path)
    return classes
