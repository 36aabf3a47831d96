"""Stage-2 methods: heads that wrap a trained stage-1 ``BoxHead``, freeze what the official code freezes
and add the new parameters.

| method (run ``stage2.name``) | class | trains | frozen |
|---|---|---|---|
| ``disalign`` (DisAlign, CVPR 2021) | ``DisAlignHead`` | per-class scale/bias (fg), confidence ``Linear(1024, 1)`` | all of stage 1 |
| ``simcal`` (SimCal, ECCV 2020) | ``SimCalHead`` | calibration head ``3fc_ft`` or ``2fc_rand`` | all of stage 1 |
| ``finetune`` with ``head: 3fc_ft`` (SimCal Table 4) | ``SimCalHead(loss_head=...)`` | the calibration head, with another loss | all of stage 1 |
| ``bags`` (BAGS stage 2, CVPR 2020) | ``retrain_classifier`` with the ``group_softmax`` head | the new classifier | 2-fc head, box regressor |
| ``bags`` with ``background_group``/``others`` false (BAGS Table 4) | ``retrain_classifier`` with ``bags_ablation`` | the new classifier | 2-fc head, box regressor |
| ``crt`` (Kang et al.) | ``retrain_classifier`` with a fresh ``softmax`` classifier | the new classifier | 2-fc head, box regressor |
| ``lws`` (Kang et al.) | ``LWSHead`` | per-class logit scale (C+1, init 1) | all of stage 1 |
| ``tau_norm`` (Kang et al., BAGS Table 1) | ``TauNormHead`` | nothing (``requires_training = False``) | all |
| ``ncm`` (BAGS Table 1) | ``NCMHead`` | nothing; class means from one pass (``fit_pass = True``) | all |
| ``finetune`` / ``finetune_tail`` | the stage-1 head itself | ``trainable``: ``fc_cls`` / ``head`` / ``all`` | the rest |

Shapes: pooled (R, in_channels, 7, 7); stage-1 features (R, hidden); logits (R, C+1) in ``background``
convention (bg column kept by every calibration). ``probabilities`` of a stage-2 head is the stage-2
prediction alone; ``original_probabilities`` is the stage-1 head's, so the ``dual_head`` view
(``ltbench.methods.calibration.dual_head``) can combine the two.

Which RoIs and images stage 2 trains on (SimCal's bi-level sampler, cRT's class-balanced sampler, the
tail-only data of ``finetune_tail``) is the sampler's and adapter's business; SimCal's RoI composition
is ``ltbench.methods.samplers.compose_bilevel_batch``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ltbench.errors import LtbenchError
from ltbench.data.lvis_meta import ClassStats
from ltbench.methods.box_head import BoxHead, BoxHeadOutput, build_box_head
from ltbench.methods.calibration import tau_normalize
from ltbench.methods.conventions import background_index, foreground_slice, is_foreground, to_foreground_index


def freeze(module: nn.Module) -> nn.Module:
    """Set ``requires_grad=False`` on every parameter of ``module``; returns it."""
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module


def _class_counts(counts: Sequence[int] | torch.Tensor | None, num_classes: int, what: str, method: str) -> torch.Tensor:
    if counts is None:
        raise LtbenchError(
            f"stage-2 method {method!r} needs per-class {what}",
            key=f"stage2 ({method})",
            expected=f"{what}= a list of {num_classes} ints in class-index order",
            hint="the adapter passes the training set's statistics (ltbench.data)",
        )
    tensor = torch.as_tensor(counts, dtype=torch.float64)
    if tensor.shape != (num_classes,):
        raise LtbenchError(
            f"{what} has {tuple(tensor.shape)} entries", key=f"stage2 ({method})", expected=f"{num_classes} entries"
        )
    return tensor


def linear_classifier(head: BoxHead) -> nn.Linear:
    """The stage-1 head's ``cls_score`` as an ``nn.Linear`` over C+1 classes, or a clear error."""
    layer = getattr(head, "cls_score", None)
    if not isinstance(layer, nn.Linear) or layer.out_features != head.num_classes + 1:
        raise LtbenchError(
            f"stage-1 head {type(head).__name__} has no linear C+1 classifier 'cls_score'",
            key="stage2",
            expected="a stage-1 run with classifier linear and loss ce (softmax)",
        )
    return layer


class Stage2Head(BoxHead):
    """Base of the stage-2 heads: owns a frozen stage-1 head and shares its 2-fc head and box regressor.

    ``forward`` runs stage 1 and returns its output with the stage-2 logits in ``class_logits`` and the
    stage-1 output under ``extras["stage1"]``.
    """

    #: False for heads with nothing to optimise (tau-norm, NCM): the adapter skips the training loop.
    requires_training: bool = True
    #: True for heads that need one statistics pass over the training data (NCM) via ``accumulate``.
    fit_pass: bool = False

    def __init__(self, stage1: BoxHead, *, freeze_stage1: bool = True) -> None:
        nn.Module.__init__(self)
        self.num_classes = stage1.num_classes
        self.background = stage1.background
        self.num_box_deltas = stage1.num_box_deltas
        self.progress = dict(stage1.progress)
        self.class_stats = getattr(stage1, "class_stats", None)
        self.stage1 = freeze(stage1) if freeze_stage1 else stage1

    @property
    def features(self) -> nn.Module:  # type: ignore[override]
        return self.stage1.features

    @property
    def bbox_pred(self) -> nn.Module:  # type: ignore[override]
        return self.stage1.bbox_pred

    def set_progress(self, epoch: int, max_epochs: int, iteration: int, max_iterations: int) -> None:
        super().set_progress(epoch, max_epochs, iteration, max_iterations)
        self.stage1.set_progress(epoch, max_epochs, iteration, max_iterations)

    def stage2_logits(self, pooled: torch.Tensor, stage1_output: BoxHeadOutput) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, pooled: torch.Tensor) -> BoxHeadOutput:
        # A frozen stage 1 needs no autograd graph (saves the activations of 8192 RoIs per iteration).
        track = torch.is_grad_enabled() and (pooled.requires_grad or any(p.requires_grad for p in self.stage1.parameters()))
        with torch.set_grad_enabled(track):
            first = self.stage1(pooled)
        logits = self.stage2_logits(pooled, first)
        return BoxHeadOutput([logits], first.box_deltas, first.features, {"stage1": first})

    def regression_deltas(self, output: BoxHeadOutput) -> torch.Tensor:
        return self.stage1.regression_deltas(output.extras["stage1"])

    def original_probabilities(self, output: BoxHeadOutput) -> torch.Tensor:
        """(R, C+1) the stage-1 head's probabilities."""
        return self.stage1.probabilities(output.extras["stage1"])

    def probabilities(self, output: BoxHeadOutput) -> torch.Tensor:
        return F.softmax(output.final_logits, dim=-1)

    def classification_losses(self, output: BoxHeadOutput, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss_cls": F.cross_entropy(output.final_logits, labels)}


class DisAlignHead(Stage2Head):
    """DisAlign's adaptive calibration (cvpods ``DisAlignFastRCNNOutputLayers``) with GRW loss.

    ``s_j = sigma(x) * (alpha_j z_j + beta_j) + (1 - sigma(x)) * z_j`` for the C fg logits, the bg logit
    untouched; ``alpha`` (C,) init 1, ``beta`` (C,) init 0 (so the head is the identity at init whatever
    ``sigma(x)``), ``sigma(x) = sigmoid(Linear(hidden, 1)(x))`` with weight ~ N(0, 0.01) and bias 0; x is
    the (R, hidden) stage-1 feature. Loss: generalised re-weighting CE, ``w_j = (n_j / sum n)^-rho``
    normalised to sum C over fg, bg weight 1, PyTorch's weighted mean (divides by the sum of the RoIs'
    weights). Counts (the release's ``num_shots``; instance vs image counts unverified) clamped to >= 1.
    """

    def __init__(self, stage1: BoxHead, *, counts: Sequence[int] | torch.Tensor | None = None, rho: float = 0.8) -> None:
        super().__init__(stage1)
        num_classes = self.num_classes
        n = _class_counts(counts, num_classes, "counts", "disalign").clamp_min(1)
        weights = (n / n.sum()).pow(-rho)
        weights = weights / weights.sum() * num_classes
        class_weight = torch.ones(num_classes + 1, dtype=torch.float64)
        class_weight[foreground_slice(num_classes, self.background)] = weights
        self.register_buffer("class_weight", class_weight.float())
        self.rho = rho
        self.logit_scale = nn.Parameter(torch.ones(num_classes))
        self.logit_bias = nn.Parameter(torch.zeros(num_classes))
        self.confidence_layer = nn.Linear(stage1.features.out_channels, 1)
        nn.init.normal_(self.confidence_layer.weight, std=0.01)
        nn.init.zeros_(self.confidence_layer.bias)

    def stage2_logits(self, pooled: torch.Tensor, stage1_output: BoxHeadOutput) -> torch.Tensor:
        z = stage1_output.final_logits
        if z.shape[1] != self.num_classes + 1:
            raise LtbenchError("DisAlign needs C+1 softmax logits from stage 1", key="stage2", expected="a ce stage-1 run")
        fg = foreground_slice(self.num_classes, self.background)
        confidence = torch.sigmoid(self.confidence_layer(stage1_output.features))
        aligned_fg = confidence * (z[:, fg] * self.logit_scale + self.logit_bias) + (1 - confidence) * z[:, fg]
        out = z.clone()
        out[:, fg] = aligned_fg
        return out

    def classification_losses(self, output: BoxHeadOutput, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        weight = self.class_weight.to(output.final_logits.dtype)
        return {"loss_cls": F.cross_entropy(output.final_logits, labels, weight=weight)}


class SimCalHead(Stage2Head):
    """SimCal's calibration head on the stage-1 RoI features (R, in_channels*7*7) -> (R, C+1) logits.

    ``variant="3fc_ft"``: Linear(12544, 1024) -> ReLU -> Linear(1024, 1024) -> ReLU -> Linear(1024, C+1),
    initialised from the stage-1 fc6, fc7 and linear ``cls_score`` (the released default); ``"2fc_rand"``:
    Linear(12544, 1024) -> ReLU -> Linear(1024, C+1), PyTorch default init (the challenge version). Loss:
    softmax CE over C+1, mean over the RoIs whose label is >= 0 (RoIs dropped by ``simcal_select_rois``
    are passed with label -1; ``ltbench.methods.samplers.compose_bilevel_batch`` selects them). Inference: ``probabilities`` = calibrated softmax; combine with
    ``original_probabilities`` through the ``dual_head`` view (T=100 in code, 300 in the paper).

    ``loss_head`` (a registered C+1 head name, e.g. ``class_margin``, ``reweight``, ``focal``) trains the
    calibration head with that head's loss and reads it with that head's inference rule (SimCal Table 4's
    decoupled CM/LR/FL; ``class_stats`` as that head needs them).
    """

    def __init__(
        self,
        stage1: BoxHead,
        *,
        variant: str = "3fc_ft",
        loss_head: str | None = None,
        loss_params: dict[str, Any] | None = None,
        class_stats: ClassStats | None = None,
    ) -> None:
        super().__init__(stage1)
        self.loss_head: BoxHead | None = None
        if loss_head is not None and loss_head != "softmax":
            # SimCal Table 4: the calibration head trained with another loss (margin, re-weighting, focal). Only
            # the loss and inference rule of that head are used; its own (1-unit) layers are never called.
            head = build_box_head(
                loss_head,
                num_classes=self.num_classes,
                background=self.background,
                num_box_deltas=1,
                in_channels=1,
                pool_size=1,
                hidden=1,
                class_stats=class_stats,
                **(loss_params or {}),
            )
            if not hasattr(head, "logits_loss") or getattr(head, "num_logits", None) != self.num_classes + 1:
                raise LtbenchError(
                    f"loss {loss_head!r} cannot train a C+1 calibration head", key="stage2.loss", expected="ce, class_margin, reweight or focal"
                )
            self.loss_head = freeze(head)
        fc6, fc7 = stage1.features.fc6, stage1.features.fc7
        num_outputs = self.num_classes + 1
        if variant == "3fc_ft":
            classifier = linear_classifier(stage1)
            layers = [nn.Linear(fc6.in_features, fc6.out_features), nn.Linear(fc7.in_features, fc7.out_features)]
            last = nn.Linear(classifier.in_features, num_outputs)
            with torch.no_grad():
                for new, old in zip([*layers, last], [fc6, fc7, classifier]):
                    new.weight.copy_(old.weight)
                    new.bias.copy_(old.bias)
            self.calibration_head = nn.Sequential(layers[0], nn.ReLU(), layers[1], nn.ReLU(), last)
        elif variant == "2fc_rand":
            self.calibration_head = nn.Sequential(
                nn.Linear(fc6.in_features, fc6.out_features), nn.ReLU(), nn.Linear(fc6.out_features, num_outputs)
            )
        else:
            raise LtbenchError(f"unknown SimCal head {variant!r}", key="stage2.head", expected="'3fc_ft' or '2fc_rand'")
        self.variant = variant

    def stage2_logits(self, pooled: torch.Tensor, stage1_output: BoxHeadOutput) -> torch.Tensor:
        return self.calibration_head(pooled.flatten(start_dim=1))

    def classification_losses(self, output: BoxHeadOutput, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        keep = labels >= 0
        if not bool(keep.any()):
            return {"loss_cls": output.final_logits.sum() * 0.0}
        if self.loss_head is not None:
            return self.loss_head.logits_loss(output.final_logits[keep], labels[keep])
        return {"loss_cls": F.cross_entropy(output.final_logits[keep], labels[keep])}

    def probabilities(self, output: BoxHeadOutput) -> torch.Tensor:
        if self.loss_head is not None:
            return self.loss_head.logits_probabilities(output.final_logits)
        return F.softmax(output.final_logits, dim=-1)


class LWSHead(Stage2Head):
    """Learnable weight scaling: ``logits_j = f_j * z_j`` with f (C+1,) initialised to 1 (identity at init).

    Kang et al. scale the classifier weights ``f_j w_j``; with stage-1 biases the whole logit is scaled.
    Trained with CE (class-balanced data from the sampler); everything of stage 1 frozen.
    """

    def __init__(self, stage1: BoxHead) -> None:
        super().__init__(stage1)
        self.scale = nn.Parameter(torch.ones(self.num_classes + 1))

    def stage2_logits(self, pooled: torch.Tensor, stage1_output: BoxHeadOutput) -> torch.Tensor:
        return stage1_output.final_logits * self.scale


class TauNormHead(Stage2Head):
    """tau-normalised stage-1 classifier: ``w_j / ||w_j||^tau`` (all C+1 rows, or fg rows only).

    ``bias="keep"`` adds the stage-1 bias unchanged; ``"drop"`` uses none. Nothing is trained.
    """

    requires_training = False

    def __init__(self, stage1: BoxHead, *, tau: float = 1.0, rows: str = "all", bias: str = "keep") -> None:
        super().__init__(stage1)
        if rows not in ("all", "foreground") or bias not in ("keep", "drop"):
            raise LtbenchError("bad tau_norm option", key="stage2", expected="rows all|foreground, bias keep|drop")
        self.classifier = linear_classifier(stage1)
        self.tau, self.rows, self.bias = tau, rows, bias

    def stage2_logits(self, pooled: torch.Tensor, stage1_output: BoxHeadOutput) -> torch.Tensor:
        select = None if self.rows == "all" else foreground_slice(self.num_classes, self.background)
        weight = tau_normalize(self.classifier.weight, self.tau, rows=select)
        bias = self.classifier.bias if self.bias == "keep" else None
        return F.linear(stage1_output.features, weight, bias)

    def classification_losses(self, output: BoxHeadOutput, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        raise LtbenchError("tau-norm has no training step", key="stage2", expected="predict directly (requires_training is False)")


class NCMHead(Stage2Head):
    """Nearest class mean (BAGS Table 1 (10)/(11)): cosine similarity to per-class mean features.

    ``feature="fc"``: the (R, hidden) stage-1 features; ``"roi_conv"``: the flattened pooled RoI features.
    ``accumulate(output, labels)`` adds the foreground RoIs of a training batch to the class sums (one pass,
    no optimiser). Inference: ``p_n = softmax(cos(x, mean_j) / temperature)`` over the C classes,
    ``p_bg`` from the stage-1 head, fg = ``p_n * (1 - p_bg)``. Classes never seen have a zero mean
    (similarity 0).
    """

    requires_training = False
    fit_pass = True

    def __init__(self, stage1: BoxHead, *, feature: str = "fc", temperature: float = 1.0) -> None:
        super().__init__(stage1)
        if feature == "fc":
            width = stage1.features.out_channels
        elif feature == "roi_conv":
            width = stage1.features.fc6.in_features
        else:
            raise LtbenchError(f"unknown NCM feature {feature!r}", key="stage2.feature", expected="'fc' or 'roi_conv'")
        self.feature, self.temperature = feature, temperature
        self.register_buffer("class_sums", torch.zeros(self.num_classes, width, dtype=torch.float64))
        self.register_buffer("class_counts", torch.zeros(self.num_classes, dtype=torch.int64))

    def _features(self, pooled: torch.Tensor, stage1_output: BoxHeadOutput) -> torch.Tensor:
        return stage1_output.features if self.feature == "fc" else pooled.flatten(start_dim=1)

    def forward(self, pooled: torch.Tensor) -> BoxHeadOutput:
        output = super().forward(pooled)
        output.extras["ncm_features"] = self._features(pooled, output.extras["stage1"])
        return output

    def stage2_logits(self, pooled: torch.Tensor, stage1_output: BoxHeadOutput) -> torch.Tensor:
        x = F.normalize(self._features(pooled, stage1_output), dim=1)
        means = F.normalize(self.class_sums.to(x.dtype), dim=1)
        return x @ means.t() / self.temperature  # (R, C): fg similarities only

    @torch.no_grad()
    def accumulate(self, output: BoxHeadOutput, labels: torch.Tensor) -> None:
        """Add the foreground RoIs (labels in ``background`` convention) of one batch to the class means."""
        positive = is_foreground(labels, self.num_classes, self.background)
        index = to_foreground_index(labels[positive], self.background)
        feats = output.extras["ncm_features"][positive].to(self.class_sums.dtype)
        self.class_sums.index_add_(0, index, feats)
        self.class_counts += torch.bincount(index, minlength=self.num_classes)

    def probabilities(self, output: BoxHeadOutput) -> torch.Tensor:
        original = self.original_probabilities(output)
        bg = background_index(self.num_classes, self.background)
        out = torch.empty_like(original)
        out[:, foreground_slice(self.num_classes, self.background)] = F.softmax(output.final_logits, dim=1) * (
            1 - original[:, bg : bg + 1]
        )
        out[:, bg] = original[:, bg]
        return out

    def classification_losses(self, output: BoxHeadOutput, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        raise LtbenchError("NCM has no training step", key="stage2", expected="one accumulate() pass (fit_pass is True)")


#: Parameter-name prefixes that make up the "feature" part of a head (everything else is the classifier).
_FEATURE_PREFIXES = ("features.", "bbox_pred.")


def set_trainable(head: BoxHead, trainable: str) -> BoxHead:
    """Freeze a head except ``trainable``: ``"fc_cls"`` (the classifier: every parameter outside the 2-fc
    head and box regressor), ``"head"`` (2-fc head + classifier; box regressor frozen) or ``"all"``."""
    if trainable not in ("fc_cls", "head", "all"):
        raise LtbenchError(f"unknown trainable part {trainable!r}", key="stage2.trainable", expected="fc_cls, head or all")
    for name, parameter in head.named_parameters():
        if trainable == "all":
            train = True
        elif trainable == "head":
            train = not name.startswith("bbox_pred.")
        else:
            train = not name.startswith(_FEATURE_PREFIXES)
        parameter.requires_grad_(train)
    return head


def retrain_classifier(
    stage1: BoxHead, head_name: str, *, trainable: str = "fc_cls", keep_classifier: bool = False, **params: Any
) -> BoxHead:
    """A new head ``head_name`` whose 2-fc head and box regressor are copied from stage 1 (BAGS, cRT).

    Parameters of the new head with the same name and shape as in stage 1 are copied (mmcv's rule of
    skipping shape-mismatched weights: BAGS' C+1+G classifier is therefore new); with
    ``keep_classifier=False`` only the ``features.*``/``bbox_pred.*`` weights are copied (cRT re-initialises
    the classifier). Then ``set_trainable(trainable)``.
    """
    fc6 = stage1.features.fc6
    pool_size = int(params.pop("pool_size", 7))
    head = build_box_head(
        head_name,
        num_classes=stage1.num_classes,
        background=stage1.background,
        num_box_deltas=stage1.num_box_deltas,
        in_channels=fc6.in_features // (pool_size * pool_size),
        pool_size=pool_size,
        hidden=stage1.features.out_channels,
        **params,
    )
    # the shared 2-fc head and box regressor through the modules (a recurrent stage 1 keeps them under base.)
    head.features.load_state_dict(stage1.features.state_dict())
    head.bbox_pred.load_state_dict(stage1.bbox_pred.state_dict())
    if keep_classifier:
        old, new = stage1.state_dict(), head.state_dict()
        head.load_state_dict(
            {name: value for name, value in old.items() if name in new and new[name].shape == value.shape}, strict=False
        )
    head.progress = dict(stage1.progress)
    return set_trainable(head, trainable)
