"""Box heads of the classification losses, registered in ``BOX_HEADS`` (see ``box_head.py``).

Every head here is a ``LogitsBoxHead``: the shared 2-fc features, one classifier producing K logits
(``classifier=`` picks linear/cosine/normed_linear, see ``ltbench.methods.classifiers``), a loss on those
logits and an inference rule turning them into (R, C+1) probabilities in the head's ``background``
convention. The loss and the inference rule are also available on raw logits
(``logits_loss(logits, labels)``, ``logits_probabilities(logits)``) so a recurrent head (PCB) can apply
them to every step.

| name | K | loss | inference |
|---|---|---|---|
| softmax (box_head.py) | C+1 | CE | softmax |
| eqlv2 | C+1 sigmoid, bg column = objectness | EQL v2 | sigmoid(z_fg) * (1 - sigmoid(z_bg)) |
| seesaw | C+2: [classes, obj_fg, obj_bg] | objectness CE + seesaw CE | softmax(classes) * p_obj(fg) |
| focal | C+1 | softmax focal (or sigmoid focal) | softmax (or sigmoid) |
| reweight | C+1 | class-weighted CE | softmax |
| class_margin | C+1 | CE with target margin | softmax (no margin) |
| label_smoothing | C+1 | smoothed CE | softmax |
| online_label_smoothing | C+1 | OLS | softmax |
| group_softmax | C+2+G: [bg, fg] + per group [others, classes] | per-group CE, others sampling | BAGS merge |
| bce | C sigmoid (no bg logit) | BCE, bg RoIs all-zero targets | sigmoid, bg score 0 |
| eql | C sigmoid (no bg logit) | EQL v1 (rare negatives dropped for fg RoIs) | sigmoid, bg score 0 |

Class statistics come as one ``class_stats=`` object (``ltbench.data.lvis_meta.ClassStats``, lists in
class-index order) that every head accepts; the heads that need counts read them with
``box_head.class_counts``, which raises ``LtbenchError`` when they are missing.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ltbench.errors import LtbenchError
from ltbench.methods.box_head import BOX_HEADS, BoxHead, BoxHeadOutput, class_counts
from ltbench.methods.classifiers import build_classifier
from ltbench.methods.conventions import Background


#: Keyword options of the shared 2-fc feature head (``BoxHead``).
FEATURE_OPTIONS = ("in_channels", "pool_size", "hidden", "class_stats")


def head_options(cls: type) -> list[str]:
    """Every keyword option a head class accepts (its own and its bases')."""
    names: set[str] = set(FEATURE_OPTIONS)
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is None or klass in (BoxHead, torch.nn.Module, object):
            continue
        names |= {
            name
            for name, p in inspect.signature(init).parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        }
    names.discard("num_logits")
    return sorted(names)


class LogitsBoxHead(BoxHead):
    """A box head with one classifier of ``num_logits`` outputs; subclasses define the loss and inference.

    Args:
        num_classes, background, num_box_deltas: see ``BoxHead``.
        num_logits: K, the classifier width (method-specific).
        classifier: classifier spec (None = linear).
        in_channels, pool_size, hidden, class_stats: see ``BoxHead``.
    """

    def __init__(
        self,
        num_classes: int,
        background: Background,
        num_box_deltas: int,
        *,
        num_logits: int,
        classifier: dict[str, Any] | None = None,
        **feature_kwargs: Any,
    ) -> None:
        unknown = sorted(set(feature_kwargs) - set(FEATURE_OPTIONS))
        if unknown:
            registered = [n for n in BOX_HEADS.names() if BOX_HEADS.get(n) is type(self)]
            head = registered[0] if registered else type(self).__name__
            raise LtbenchError(
                f"unknown option(s) {', '.join(unknown)} for box head {head!r}",
                key="loss",
                expected="options " + ", ".join(head_options(type(self))),
            )
        super().__init__(num_classes, background, num_box_deltas, **feature_kwargs)
        self.num_logits = num_logits
        self.cls_score = build_classifier(classifier, self.features.out_channels, num_logits)

    def class_logits(self, features: torch.Tensor) -> torch.Tensor:
        """(R, hidden) -> (R, K)."""
        return self.cls_score(features)

    # -- per-method ---------------------------------------------------------------------------------
    def logits_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Loss terms of (R, K) logits and (R,) labels in ``background`` convention."""
        raise NotImplementedError

    def logits_probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """(R, K) logits -> (R, C+1) probabilities in ``background`` convention."""
        return F.softmax(logits, dim=-1)

    # -- contract -----------------------------------------------------------------------------------
    def classification_losses(self, output: BoxHeadOutput, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.logits_loss(output.final_logits, labels)

    def probabilities(self, output: BoxHeadOutput) -> torch.Tensor:
        return self.logits_probabilities(output.final_logits)


@BOX_HEADS.register("softmax")
class SoftmaxBoxHead(LogitsBoxHead):
    """Classifier over C+1 classes with softmax cross-entropy: the plain Mask R-CNN baseline.

    ``classifier=`` picks the layer (``{"name": "linear"}`` default, ``cosine``, ``normed_linear``, see
    ``ltbench.methods.classifiers``). Logits (R, C+1) in ``background`` convention; loss = mean CE over
    the R sampled RoIs (torchvision's ``fastrcnn_loss``, detectron2's and mmdet's default when every label
    weight is 1).
    """

    def __init__(self, num_classes: int, background: Background, num_box_deltas: int, **kwargs: Any) -> None:
        super().__init__(num_classes, background, num_box_deltas, num_logits=num_classes + 1, **kwargs)

    def logits_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        # mean over the R RoIs; sum / max(R, 1) so an empty batch gives 0 instead of NaN
        return {"loss_cls": F.cross_entropy(logits, labels, reduction="sum") / max(labels.numel(), 1)}


@BOX_HEADS.register("eqlv2")
class EQLv2BoxHead(LogitsBoxHead):
    """EQL v2 (``ltbench.methods.losses.eqlv2``): C+1 sigmoid logits, the background column is the
    objectness channel. Params: gamma 12, mu 0.8, alpha 4, ``distributed`` (all-reduce the statistics,
    default True as the official code; False = the mmdet 3.x port), ``test_with_obj`` (True: fg scores
    multiplied by 1 - sigmoid(z_bg); False: plain sigmoid of every column). Scores are not normalised."""

    def __init__(
        self,
        num_classes: int,
        background: Background,
        num_box_deltas: int,
        *,
        gamma: float = 12.0,
        mu: float = 0.8,
        alpha: float = 4.0,
        distributed: bool = True,
        test_with_obj: bool = True,
        **kwargs: Any,
    ) -> None:
        from ltbench.methods.losses.eqlv2 import EQLv2Loss

        super().__init__(num_classes, background, num_box_deltas, num_logits=num_classes + 1, **kwargs)
        self.loss_eqlv2 = EQLv2Loss(num_classes, background, gamma=gamma, mu=mu, alpha=alpha, distributed=distributed)
        self.test_with_obj = test_with_obj

    def logits_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss_cls": self.loss_eqlv2(logits, labels)}

    def logits_probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        from ltbench.methods.losses.eqlv2 import eqlv2_probabilities

        if not self.test_with_obj:
            return torch.sigmoid(logits)
        return eqlv2_probabilities(logits, self.num_classes, self.background)


@BOX_HEADS.register("seesaw")
class SeesawBoxHead(LogitsBoxHead):
    """Seesaw (``ltbench.methods.losses.seesaw``): C+2 logits ``[C classes | obj_fg, obj_bg]``.
    Params: p 0.8, q 2.0, eps 1e-2. The PCB Seesaw configs use ``classifier={"name": "normed_linear"}``."""

    def __init__(
        self,
        num_classes: int,
        background: Background,
        num_box_deltas: int,
        *,
        p: float = 0.8,
        q: float = 2.0,
        eps: float = 1e-2,
        **kwargs: Any,
    ) -> None:
        from ltbench.methods.losses.seesaw import SeesawLoss

        super().__init__(num_classes, background, num_box_deltas, num_logits=num_classes + 2, **kwargs)
        self.loss_seesaw = SeesawLoss(num_classes, background, p=p, q=q, eps=eps)

    def logits_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.loss_seesaw(logits, labels)

    def logits_probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        from ltbench.methods.losses.seesaw import seesaw_probabilities

        return seesaw_probabilities(logits, self.num_classes, self.background)


@BOX_HEADS.register("focal")
class FocalBoxHead(LogitsBoxHead):
    """Focal loss over C+1 logits.

    ``sigmoid=False`` (default): multi-class softmax focal loss ``-(1 - p_y)^gamma log p_y`` (SimCal Sec. 4.1),
    softmax inference. ``sigmoid=True``: sigmoid focal loss per column with one-hot targets over the C+1
    columns (background RoIs target the background column), ``alpha`` (0.25) balancing, sum / R; scores
    are the sigmoids of the columns (BAGS' "focal loss at proposal level"; not normalised).
    ``gamma`` 2.0 (Lin et al.; neither paper reports it).
    """

    def __init__(
        self,
        num_classes: int,
        background: Background,
        num_box_deltas: int,
        *,
        gamma: float = 2.0,
        sigmoid: bool = False,
        alpha: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_classes, background, num_box_deltas, num_logits=num_classes + 1, **kwargs)
        if alpha is not None and not sigmoid:
            raise LtbenchError(
                "focal alpha is only defined for the sigmoid focal loss", key="loss.alpha", expected="sigmoid: true, or no alpha"
            )
        self.gamma, self.sigmoid = gamma, sigmoid
        self.alpha = (0.25 if alpha is None else alpha) if sigmoid else None

    def logits_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        from ltbench.methods.losses.focal import sigmoid_focal_loss, softmax_focal_loss

        if self.sigmoid:
            targets = F.one_hot(labels, self.num_classes + 1)
            return {"loss_cls": sigmoid_focal_loss(logits, targets, self.gamma, self.alpha)}
        return {"loss_cls": softmax_focal_loss(logits, labels, self.gamma)}

    def logits_probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits) if self.sigmoid else F.softmax(logits, dim=-1)


@BOX_HEADS.register("reweight")
class ReweightBoxHead(LogitsBoxHead):
    """Inverse-frequency re-weighted CE (``ltbench.methods.losses.reweight``).

    Params (spec names): ``weight`` ("inverse_instance_count" or "inverse_image_count": the class
    statistics' instance or image counts), ``numerator`` (number, "median_instance_count",
    "mean_instance_count") or ``normalize`` ("mean", the default when no numerator), ``beta`` (1.0),
    ``clip`` ([0.1, 10]), ``background_weight`` (1.0), ``reduction`` ("rois" or "weights").
    """

    def __init__(
        self,
        num_classes: int,
        background: Background,
        num_box_deltas: int,
        *,
        weight: str = "inverse_instance_count",
        numerator: float | str | None = None,
        normalize: str | None = None,
        beta: float = 1.0,
        clip: Sequence[float] = (0.1, 10.0),
        background_weight: float = 1.0,
        reduction: str = "rois",
        **kwargs: Any,
    ) -> None:
        from ltbench.methods.losses.reweight import inverse_frequency_weights

        if weight in ("inverse_instance_count", "inverse_image_count"):
            field = "instance_counts" if weight == "inverse_instance_count" else "image_counts"
            counts = class_counts(kwargs.get("class_stats"), field, num_classes, head="reweight")
        else:
            raise LtbenchError(
                f"unknown re-weighting {weight!r}", key="loss.weight", expected="inverse_instance_count or inverse_image_count"
            )
        if reduction not in ("rois", "weights"):
            raise LtbenchError(f"unknown reduction {reduction!r}", key="loss.reduction", expected="'rois' or 'weights'")
        super().__init__(
            num_classes,
            background,
            num_box_deltas,
            num_logits=num_classes + 1,
            **kwargs,
        )
        lo, hi = clip
        weights = inverse_frequency_weights(
            counts,
            background,
            numerator=numerator,
            normalize=normalize,
            beta=beta,
            clip=(lo, hi),
            background_weight=background_weight,
        )
        # derived from the class counts at construction: not part of the checkpoint
        self.register_buffer("class_weights", weights.float(), persistent=False)
        self.reduction = reduction

    def logits_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        from ltbench.methods.losses.reweight import weighted_cross_entropy

        return {"loss_cls": weighted_cross_entropy(logits, labels, self.class_weights, self.reduction)}


@BOX_HEADS.register("class_margin")
class ClassMarginBoxHead(LogitsBoxHead):
    """Class-aware margin CE (``ltbench.methods.losses.class_margin``), Delta_j = K / N_j^(1/4) on the
    target logit during training. Needs ``instance_counts``. Params: ``max_margin`` (0.5), ``constant``
    (K, overrides max_margin), ``exponent`` (0.25), ``scale`` (1.0)."""

    def __init__(
        self,
        num_classes: int,
        background: Background,
        num_box_deltas: int,
        *,
        max_margin: float = 0.5,
        constant: float | None = None,
        exponent: float = 0.25,
        scale: float = 1.0,
        **kwargs: Any,
    ) -> None:
        from ltbench.methods.losses.class_margin import class_margins, margin_columns

        counts = class_counts(kwargs.get("class_stats"), "instance_counts", num_classes, head="class_margin")
        super().__init__(num_classes, background, num_box_deltas, num_logits=num_classes + 1, **kwargs)
        margins = class_margins(counts, max_margin=max_margin, constant=constant, exponent=exponent)
        self.register_buffer("margins", margin_columns(margins, background).float(), persistent=False)
        self.scale = scale

    def logits_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        from ltbench.methods.losses.class_margin import margin_cross_entropy

        return {"loss_cls": margin_cross_entropy(logits, labels, self.margins, self.scale)}

    def logits_probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return F.softmax(self.scale * logits, dim=-1)


@BOX_HEADS.register("label_smoothing")
class LabelSmoothingBoxHead(LogitsBoxHead):
    """Label-smoothed CE over the C+1 columns; ``epsilon`` (0.1)."""

    def __init__(
        self, num_classes: int, background: Background, num_box_deltas: int, *, epsilon: float = 0.1, **kwargs: Any
    ) -> None:
        super().__init__(num_classes, background, num_box_deltas, num_logits=num_classes + 1, **kwargs)
        self.epsilon = epsilon

    def logits_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        from ltbench.methods.losses.label_smoothing import label_smoothing_loss

        return {"loss_cls": label_smoothing_loss(logits, labels, self.epsilon)}


@BOX_HEADS.register("online_label_smoothing")
class OnlineLabelSmoothingBoxHead(LogitsBoxHead):
    """Online label smoothing (``ltbench.methods.losses.online_label_smoothing``) over the C+1 columns.
    Params: ``alpha`` (0.5), ``initial_smoothing`` (0.1), ``empty_rows`` ("keep"), ``distributed`` (sum the
    epoch statistics over processes, True). The soft labels advance
    when ``set_progress`` reports a new epoch."""

    def __init__(
        self,
        num_classes: int,
        background: Background,
        num_box_deltas: int,
        *,
        alpha: float = 0.5,
        initial_smoothing: float = 0.1,
        empty_rows: str = "keep",
        distributed: bool = True,
        **kwargs: Any,
    ) -> None:
        from ltbench.methods.losses.online_label_smoothing import OnlineLabelSmoothing

        super().__init__(num_classes, background, num_box_deltas, num_logits=num_classes + 1, **kwargs)
        self.ols = OnlineLabelSmoothing(
            num_classes + 1,
            alpha=alpha,
            initial_smoothing=initial_smoothing,
            empty_rows=empty_rows,
            distributed=distributed,
        )

    def set_progress(self, epoch: int, max_epochs: int, iteration: int, max_iterations: int) -> None:
        super().set_progress(epoch, max_epochs, iteration, max_iterations)
        self.ols.set_epoch(epoch)

    def logits_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss_cls": self.ols(logits, labels)}


@BOX_HEADS.register("group_softmax")
class GroupSoftmaxBoxHead(LogitsBoxHead):
    """Balanced group softmax (``ltbench.methods.losses.group_softmax``): C+2+G logits. Needs
    ``instance_counts``. Params: ``bin_edges`` ((10, 100, 1000)), ``beta`` (8.0). Scores are the BAGS
    merge (not renormalised)."""

    def __init__(
        self,
        num_classes: int,
        background: Background,
        num_box_deltas: int,
        *,
        bin_edges: Sequence[int] = (10, 100, 1000),
        beta: float = 8.0,
        **kwargs: Any,
    ) -> None:
        from ltbench.methods.losses.group_softmax import GroupLayout

        counts = class_counts(kwargs.get("class_stats"), "instance_counts", num_classes, head="group_softmax")
        layout = GroupLayout.from_counts(counts, tuple(bin_edges))
        super().__init__(num_classes, background, num_box_deltas, num_logits=layout.num_logits, **kwargs)
        self.layout, self.beta = layout, beta
        table0, tables = layout.label_tables(background)
        # derived from instance_counts, rebuilt at construction: not saved in the checkpoint
        self.register_buffer("label_table0", table0, persistent=False)
        self.register_buffer("label_tables", tables, persistent=False)
        self.register_buffer("class_columns", torch.tensor(layout.class_columns), persistent=False)

    def logits_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        from ltbench.methods.losses.group_softmax import group_softmax_loss

        tables = (self.label_table0, self.label_tables)
        return {"loss_cls": group_softmax_loss(logits, labels, self.layout, self.background, beta=self.beta, tables=tables)}

    def logits_probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        from ltbench.methods.losses.group_softmax import group_softmax_probabilities

        return group_softmax_probabilities(logits, self.layout, self.background, self.class_columns)


@BOX_HEADS.register("bce")
class SigmoidBCEBoxHead(LogitsBoxHead):
    """Sigmoid BCE over C logits without a background logit (EQL's sigmoid baseline): background RoIs
    have all-zero targets, loss = sum BCE / R, scores = sigmoid with a dummy 0 background score.
    Params: ``prior_prob`` (0.001): a linear classifier's bias starts at -log((1 - pi) / pi)."""

    def __init__(
        self, num_classes: int, background: Background, num_box_deltas: int, *, prior_prob: float = 0.001, **kwargs: Any
    ) -> None:
        super().__init__(num_classes, background, num_box_deltas, num_logits=num_classes, **kwargs)
        bias = getattr(self.cls_score, "bias", None)
        if bias is not None and prior_prob is not None:
            torch.nn.init.constant_(bias, -math.log((1 - prior_prob) / prior_prob))
        self.register_buffer("tail_mask", torch.zeros(num_classes, dtype=torch.bool), persistent=False)

    def logits_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        from ltbench.methods.losses.eql import eql_loss

        return {"loss_cls": eql_loss(logits, labels, self.tail_mask, self.background)}

    def logits_probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        from ltbench.methods.losses.eql import sigmoid_probabilities_with_dummy_background

        return sigmoid_probabilities_with_dummy_background(logits, self.background)


@BOX_HEADS.register("eql")
class EQLBoxHead(SigmoidBCEBoxHead):
    """Equalization loss v1 (``ltbench.methods.losses.eql``): the ``bce`` head where foreground RoIs do not
    push down the logits of classes with image frequency below ``threshold`` (lambda, 0.00177).
    Needs the class statistics' ``image_counts`` and ``num_images`` (training images: f_j = image_count_j / num_images)."""

    def __init__(
        self,
        num_classes: int,
        background: Background,
        num_box_deltas: int,
        *,
        threshold: float = 0.00177,
        **kwargs: Any,
    ) -> None:
        stats = kwargs.get("class_stats")
        counts = class_counts(stats, "image_counts", num_classes, head="eql")
        num_images = getattr(stats, "num_images", None)
        if num_images is None or int(num_images) < 1 or int(num_images) < max(counts, default=0):
            raise LtbenchError(
                f"box head 'eql' needs num_images (training images) >= every image count, got {num_images!r}",
                key="num_images",
                expected="a positive integer",
            )
        super().__init__(num_classes, background, num_box_deltas, **kwargs)
        frequencies = torch.tensor(counts, dtype=torch.float64) / int(num_images)
        self.tail_mask = frequencies < threshold
        self.threshold, self.num_images = threshold, int(num_images)
