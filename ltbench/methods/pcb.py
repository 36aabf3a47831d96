"""PCB, Pairwise Class Balance (He et al., CVPR 2022), following megvii-research/PCB @ 066cd92.

Three parts, each usable on its own:

- ``ConfusionMatrixEMA``: the train-time soft confusion matrix M (C, C), row = ground-truth class,
  column = predicted class (paper Eq. 3 and 9). Updated from the foreground RoIs of a batch only: per RoI
  a distribution over the C foreground classes (softmax over the fg logits for CE, over the C class
  logits for Seesaw, sigmoid for EQL v2), averaged per GT row, summed across processes when
  ``torch.distributed`` is initialised; EMA with momentum gamma only on rows present in the batch; the
  CE/Seesaw variants renormalise the updated rows to sum 1. M and the per-class RoI counts are buffers,
  so they are part of the checkpoint.
- The fight-back soft targets and the PCB losses: ``fightback_targets`` (column-normalised column y of M,
  ``q_i = M[i, y] / sum_k M[k, y]``, Eq. 5 and 10; the raw column for EQL v2) and ``pcb_ce_loss``,
  ``pcb_seesaw_losses``, ``pcb_eqlv2_loss`` (Eq. 11 and the variants of the official code).
- ``IterativeBoxHead`` (registered as ``"iterative"``, ``"dsn"`` and ``"pcb"``): R steps through the SAME
  shared 2-fc head and predictor of a base head (any registered head, e.g. ``"softmax"``), with
  ``MLP_cls`` (K logits -> 512 -> 256, optional LayerNorm on its input) giving an additive channel bias and
  ``MLP_loc`` (D box deltas -> 512 -> 49) giving a raw multiplicative 7x7 gate:
  ``X_{r+1} = X_r * gate + bias``. Classification losses of the steps are weighted 0.2/0.2/0.6; box
  regression uses the last step only; nothing is detached. The DSN variant (``refine=False``) keeps the
  step losses but does not refine the features.

Official behaviour is the default; where the paper reads differently it is a named option:

- ``form="official"``: CE variant regulariser = KL(q + [0 for bg] || softmax over all C+1 logits), summed
  over positives and divided by the number of sampled RoIs. ``form="paper"``: Eq. 10 literally, the soft
  cross-entropy against the softmax over the C foreground logits only (Eq. 1), same normalisation.
- ``epoch_indexing="one_based"`` (ltbench's reading of ``start_epoch=17``: PCB active from the 17th of 24
  epochs, right after the first LR drop) or ``"zero_based"``; ``gate_unit="iteration"`` opens the gate at
  ``start_iteration`` (or ``start_fraction`` of ``max_iterations``) for iteration-based frameworks.
- The paper's Eq. 12 also weights the localisation loss per step; the official code (and the box-head
  contract, which returns one set of deltas) regress from the last step only. Not offered as an option.

Order within one step (training): update M with this step's predictions, then build the soft targets from
the updated M (the paper's ``M^t`` in Eq. 10), then the loss if the gate is open and ``alpha_r > 0``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from torch import nn

from ltbench.errors import LtbenchError
from ltbench.methods.box_head import BOX_HEADS, BoxHead, BoxHeadOutput, build_box_head
from ltbench.methods.conventions import Background, check_background, is_foreground, to_foreground_index
from ltbench.methods.pcb_losses import (  # noqa: F401  (re-exported: PCB's public names live on in ltbench.methods.pcb)
    ConfusionMatrixEMA,
    fightback_targets,
    foreground_distribution,
    pcb_ce_loss,
    pcb_eqlv2_loss,
    pcb_eqlv2_targets,
    pcb_seesaw_losses,
    step_alpha,
)

PCBVariant = Literal["ce", "seesaw", "eqlv2"]
PCB_VARIANTS: tuple[str, ...] = ("ce", "seesaw", "eqlv2")

#: Official step weights for the 3-step head (``iter_loss_weight``).
DEFAULT_STEP_WEIGHTS_3 = (0.2, 0.2, 0.6)

#: Official PCB alpha per base loss (configs/pcb): CE 0.4, EQL v2 0.2, Seesaw 0.05.
DEFAULT_ALPHA: dict[str, float] = {"ce": 0.4, "eqlv2": 0.2, "seesaw": 0.05}


def _mlp(in_features: int, out_features: int, hidden: int, layer_norm: bool) -> nn.Sequential:
    """Linear(in, hidden) -> ReLU -> Linear(hidden, out), optional LayerNorm(in) first; PyTorch default init."""
    layers: list[nn.Module] = [nn.LayerNorm(in_features)] if layer_norm else []
    layers += [nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_features)]
    return nn.Sequential(*layers)


class IterativeBoxHead(BoxHead):
    """PCB's recurrent refinement head (and its DSN and plain-paradigm variants) around a base head.

    Shapes: pooled (R, in_channels, P, P) -> per step r: logits (R, K) from the base head's classifier
    (K = C+1 for softmax/EQL v2, C+2 for Seesaw), deltas (R, D); ``features`` of the output is step 0's
    (R, hidden). Labels and probabilities follow ``background``.

    Args:
        num_classes, background, num_box_deltas: as ``BoxHead``.
        base: registered name of the head whose 2-fc features, classifier, loss and activation are shared by
            all steps ("softmax", "seesaw", "eqlv2", ...).
        steps: R (official 3). ``steps=1`` is PCB without the recurrent paradigm.
        step_weights: weights of the steps' classification losses (official 0.2/0.2/0.6 for 3 steps;
            required for any other R > 1).
        refine: True = iterative refinement; False = deep supervision (DSN): same step losses, the
            features are not refined, so every step sees the step-0 prediction.
        layer_norm: LayerNorm on MLP_cls's input (official only for EQL v2).
        mlp_hidden: hidden width of both MLPs (512).
        pcb: None (no regulariser) or a mapping of PCB parameters: ``alpha`` (default by variant: 0.4 CE,
            0.2 EQL v2, 0.05 Seesaw), ``momentum`` (0.99), ``start_epoch`` (17), ``epoch_indexing``
            ("one_based" | "zero_based"), ``gate_unit`` ("epoch" | "iteration"), ``start_iteration``
            (iteration gate, absolute; ``ltbench plan`` sets it) or else ``start_fraction`` of max_iterations
            (default ``(start_epoch - 1 if one_based else start_epoch) / reference_epochs``),
            ``reference_epochs`` (24), ``form`` ("official" | "paper", CE only), ``distributed`` (True).
        read_step: 0-based step whose prediction ``probabilities`` returns (default: the last).
        in_channels, pool_size, hidden: shapes of the shared 2-fc head.
        **base_params: passed to the base head (``class_stats`` included: every head takes it).
    """

    def __init__(
        self,
        num_classes: int,
        background: Background,
        num_box_deltas: int,
        *,
        base: str = "softmax",
        steps: int = 3,
        step_weights: Sequence[float] | None = None,
        refine: bool = True,
        layer_norm: bool = False,
        mlp_hidden: int = 512,
        pcb: Mapping[str, Any] | None = None,
        read_step: int | None = None,
        in_channels: int = 256,
        pool_size: int = 7,
        hidden: int = 1024,
        **base_params: Any,
    ) -> None:
        nn.Module.__init__(self)  # the 2-fc head and box regressor are the base head's (shared by all steps)
        self.num_classes = num_classes
        self.background = check_background(background)
        self.num_box_deltas = num_box_deltas
        self.progress = {"epoch": 0, "max_epochs": 1, "iteration": 0, "max_iterations": 1}
        if steps < 1:
            raise LtbenchError(f"recurrent head needs steps >= 1, got {steps}", key="head.steps", expected="an integer >= 1")
        if step_weights is None:
            step_weights = DEFAULT_STEP_WEIGHTS_3 if steps == 3 else (1.0,) if steps == 1 else None
            if step_weights is None:
                raise LtbenchError(
                    f"no default step weights for steps={steps}",
                    key="head.step_weights",
                    expected=f"a list of {steps} weights (official 0.2/0.2/0.6 exists only for 3 steps)",
                )
        if len(step_weights) != steps:
            raise LtbenchError(
                f"{len(step_weights)} step weights for {steps} steps", key="head.step_weights", expected=f"{steps} weights"
            )
        self.steps = steps
        self.step_weights = tuple(float(w) for w in step_weights)
        self.refine = refine
        self.base_name = base
        self.base: BoxHead = build_box_head(
            base,
            num_classes=num_classes,
            background=background,
            num_box_deltas=num_box_deltas,
            in_channels=in_channels,
            pool_size=pool_size,
            hidden=hidden,
            **base_params,
        )
        self.in_channels, self.pool_size = in_channels, pool_size
        self.class_stats = self.base.class_stats
        self.variant: str = base if base in ("seesaw", "eqlv2") else "ce"
        if refine and steps > 1:
            with torch.no_grad():
                num_logits = self.base.class_logits(torch.zeros(1, hidden)).shape[1]
            self.mlp_cls = _mlp(num_logits, in_channels, mlp_hidden, layer_norm)
            self.mlp_loc = _mlp(num_box_deltas, pool_size * pool_size, mlp_hidden, False)
        self.read_step = steps - 1 if read_step is None else read_step
        if not 0 <= self.read_step < steps:
            raise LtbenchError(f"read_step {read_step} outside [0, {steps})", key="head.read_step", expected=f"0..{steps - 1}")
        if pcb is not None and self.variant == "ce" and base != "softmax":
            # PCB's CE variant replaces the base loss by CE (+ PCB): only meaningful on the softmax CE head.
            raise LtbenchError(
                f"PCB is defined for the ce, seesaw and eqlv2 losses, not on the {base!r} head",
                key="regularizer",
                expected="loss ce, seesaw or eqlv2 with regularizer pcb",
            )
        self.pcb = self._pcb_config(pcb)
        if self.pcb is not None:
            self.confusion = ConfusionMatrixEMA(
                num_classes,
                momentum=self.pcb["momentum"],
                renormalize_rows=self.variant != "eqlv2",
                distributed=self.pcb["distributed"],
            )
            # What the regulariser did over the training (done.json's training.pcb, checked by the regression
            # check): buffers, so that a resumed run reports its whole training.
            self.register_buffer("regularised_iterations", torch.zeros((), dtype=torch.long))
            self.register_buffer("regularised_targets", torch.zeros((), dtype=torch.long))
            self.register_buffer("offlabel_mass", torch.zeros((), dtype=torch.float64))

    def _pcb_config(self, pcb: Mapping[str, Any] | None) -> dict[str, Any] | None:
        if pcb is None:
            return None
        known = {
            "alpha", "momentum", "start_epoch", "epoch_indexing", "gate_unit", "start_fraction", "start_iteration",
            "reference_epochs", "form", "distributed", "name",
        }
        unknown = set(pcb) - known
        if unknown:
            raise LtbenchError(f"unknown PCB parameter(s) {sorted(unknown)}", key="regularizer", expected="one of " + ", ".join(sorted(known)))
        cfg: dict[str, Any] = {
            "alpha": DEFAULT_ALPHA[self.variant],
            "momentum": 0.99,
            "start_epoch": 17,
            "epoch_indexing": "one_based",
            "gate_unit": "epoch",
            "start_fraction": None,
            "start_iteration": None,
            "reference_epochs": 24,
            "form": "official",
            "distributed": True,
        }
        cfg.update({k: v for k, v in pcb.items() if k != "name"})
        if cfg["epoch_indexing"] not in ("one_based", "zero_based"):
            raise LtbenchError("bad epoch_indexing", key="regularizer.epoch_indexing", expected="'one_based' or 'zero_based'")
        if cfg["gate_unit"] not in ("epoch", "iteration"):
            raise LtbenchError("bad gate_unit", key="regularizer.gate_unit", expected="'epoch' or 'iteration'")
        if cfg["form"] not in ("official", "paper"):
            raise LtbenchError("bad form", key="regularizer.form", expected="'official' or 'paper'")
        if cfg["start_fraction"] is None:
            first = cfg["start_epoch"] - 1 if cfg["epoch_indexing"] == "one_based" else cfg["start_epoch"]
            cfg["start_fraction"] = first / cfg["reference_epochs"]
        return cfg

    # -- the shared 2-fc head and box regressor are the base head's ----------------------------------
    @property
    def features(self) -> nn.Module:  # type: ignore[override]
        return self.base.features

    @property
    def bbox_pred(self) -> nn.Module:  # type: ignore[override]
        return self.base.bbox_pred

    def class_logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.base.class_logits(features)

    def set_progress(self, epoch: int, max_epochs: int, iteration: int, max_iterations: int) -> None:
        super().set_progress(epoch, max_epochs, iteration, max_iterations)
        self.base.set_progress(epoch, max_epochs, iteration, max_iterations)

    # -- PCB gate ---------------------------------------------------------------------------------------
    def gate_open(self) -> bool:
        """PCB is active: the schedule point is reached AND every class has been seen as a foreground RoI."""
        if self.pcb is None:
            return False
        p = self.progress
        if self.pcb["gate_unit"] == "iteration":
            if self.pcb["start_iteration"] is not None:
                reached = p["iteration"] >= self.pcb["start_iteration"]
            else:
                reached = p["iteration"] >= self.pcb["start_fraction"] * p["max_iterations"]
        else:
            epoch = p["epoch"] + 1 if self.pcb["epoch_indexing"] == "one_based" else p["epoch"]
            reached = epoch >= self.pcb["start_epoch"]
        return bool(reached and self.confusion.all_seen)

    # -- forward ----------------------------------------------------------------------------------------
    def forward(self, pooled: torch.Tensor) -> BoxHeadOutput:
        logits: list[torch.Tensor] = []
        deltas: list[torch.Tensor] = []
        x = pooled
        first_features = None
        refine = self.refine and self.steps > 1
        for step in range(self.steps):
            if step > 0 and not refine:
                # DSN: no refinement, so every step's prediction equals step 0's (shared weights).
                logits.append(logits[0])
                deltas.append(deltas[0])
                continue
            feats = self.base.features(x)
            z = self.base.class_logits(feats)
            b = self.base.bbox_pred(feats)
            if first_features is None:
                first_features = feats
            logits.append(z)
            deltas.append(b)
            if refine and step < self.steps - 1:
                channel_bias = self.mlp_cls(z).view(-1, self.in_channels, 1, 1)
                spatial_gate = self.mlp_loc(b).view(-1, 1, self.pool_size, self.pool_size)
                x = x * spatial_gate + channel_bias
        assert first_features is not None
        return BoxHeadOutput(logits, deltas, first_features)

    def step_output(self, output: BoxHeadOutput, step: int) -> BoxHeadOutput:
        """The single-step output of step ``step`` (0-based), as the base head understands it."""
        return BoxHeadOutput([output.class_logits[step]], [output.box_deltas[step]], output.features, output.extras)

    def regression_deltas(self, output: BoxHeadOutput) -> torch.Tensor:
        """(R, D) deltas of the last step (official ``reg_iter=2``)."""
        return output.box_deltas[-1]

    def probabilities(self, output: BoxHeadOutput, step: int | None = None) -> torch.Tensor:
        """(R, C+1) probabilities of step ``step`` (0-based; default ``read_step``, the last)."""
        k = self.read_step if step is None else step
        return self.base.probabilities(self.step_output(output, k))

    def step_probabilities(self, output: BoxHeadOutput) -> list[torch.Tensor]:
        """(R, C+1) probabilities of every step, step 0 first (PCB Table 7's per-step views)."""
        return [self.probabilities(output, k) for k in range(self.steps)]

    # -- losses -----------------------------------------------------------------------------------------
    def _find_loss(self, kind: str) -> nn.Module:
        if kind == "seesaw":
            from ltbench.methods.losses.seesaw import SeesawLoss as wanted
        else:
            from ltbench.methods.losses.eqlv2 import EQLv2Loss as wanted
        for module in self.base.modules():
            if isinstance(module, wanted):
                return module
        raise LtbenchError(f"base head {self.base_name!r} has no {wanted.__name__} module", key="loss", expected=f"a {kind} head")

    def _eqlv2_loss_key(self) -> str:
        return getattr(self.base, "loss_key", "loss_cls")

    def _step_losses(self, logits: torch.Tensor, labels: torch.Tensor, alpha: float, active: bool, step_out: BoxHeadOutput) -> dict[str, torch.Tensor]:
        fg_mask = is_foreground(labels, self.num_classes, self.background)
        if not active or alpha <= 0:
            return self.base.classification_losses(step_out, labels)
        labels_fg = to_foreground_index(labels[fg_mask], self.background)
        if self.variant == "eqlv2":
            column = fightback_targets(self.confusion.matrix, labels_fg, normalize_columns=False)
            self._record_targets(column, labels_fg)
            return {self._eqlv2_loss_key(): pcb_eqlv2_loss(logits, labels, column, alpha, self._find_loss("eqlv2"))}
        soft = fightback_targets(self.confusion.matrix, labels_fg)
        self._record_targets(soft, labels_fg)
        if self.variant == "seesaw":
            return pcb_seesaw_losses(logits, labels, soft, alpha, self._find_loss("seesaw"))
        if logits.shape[1] != self.num_classes + 1:
            raise LtbenchError(
                f"PCB's CE variant needs C+1 = {self.num_classes + 1} softmax logits, base head {self.base_name!r} gives {logits.shape[1]}",
                key="regularizer",
                expected="base loss ce (softmax), seesaw or eqlv2",
            )
        return {"loss_cls": pcb_ce_loss(logits, labels, soft, alpha, background=self.background, form=self.pcb["form"])}

    def _record_targets(self, targets: torch.Tensor, labels_fg: torch.Tensor) -> None:
        """Adds the share of each regularised RoI's target mass that lies off its ground-truth class:
        ``1 - q[y] / sum_i q[i]`` for targets (P, C) and 0-based labels (P,); 0 for one-hot targets."""
        if not self.training:
            return
        with torch.no_grad():
            total = targets.sum(dim=1).double()
            on_label = targets.gather(1, labels_fg[:, None]).squeeze(1).double()
            share = torch.where(total > 0, 1.0 - on_label / total.clamp_min(torch.finfo(torch.float64).tiny), torch.zeros_like(total))
            self.offlabel_mass += share.sum().to(self.offlabel_mass)
            self.regularised_targets += labels_fg.numel()

    def regulariser_statistics(self) -> dict[str, Any]:
        """What PCB's regulariser did over the training, for done.json (``training.pcb``):

        - ``regularised_iterations``: iterations with the regulariser on (gate open, alpha > 0);
        - ``targets``: (RoI, step) soft targets it used;
        - ``offlabel_pct``: their mean share of mass off the RoI's ground-truth class, in percent (0 for plain
          one-hot labels); absent when the regulariser never ran, where it has no value;
        - ``classes_never_seen``: classes never sampled as a foreground RoI (the official gate waits for every
          class, so one such class keeps the regulariser off for the whole training).

        Summed over processes when ``torch.distributed`` is initialised (every rank must call it).
        """
        if self.pcb is None:
            return {}
        sums = torch.stack([self.regularised_targets.double(), self.offlabel_mass.double()])
        if self.pcb["distributed"] and torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(sums)
        targets, mass = int(sums[0].item()), float(sums[1].item())
        out: dict[str, Any] = {"regularised_iterations": int(self.regularised_iterations.item()), "targets": targets}
        if targets:
            out["offlabel_pct"] = round(100.0 * mass / targets, 3)
        out["classes_never_seen"] = self.classes_never_seen()
        return out

    def classes_never_seen(self) -> list[int]:
        """0-based indices of the classes never sampled as a foreground RoI so far (M's seen counts, which are
        summed over processes at each update)."""
        if self.pcb is None:
            return []
        return [int(i) for i in torch.nonzero(self.confusion.seen == 0).flatten()]

    def classification_losses(self, output: BoxHeadOutput, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Sum over steps of ``w_r`` x the step's classification losses (same keys as the base head, plus
        ``loss_cls_pcb`` for Seesaw+PCB). With PCB, M is updated once per step (training mode only)."""
        totals: dict[str, torch.Tensor] = {}
        fg_mask = is_foreground(labels, self.num_classes, self.background)
        regularised = False
        for step in range(self.steps):
            logits = output.class_logits[step]
            if self.pcb is not None and self.training:
                fg_probs = foreground_distribution(logits[fg_mask], self.num_classes, self.background, self.variant)
                self.confusion.update(fg_probs, to_foreground_index(labels[fg_mask], self.background))
            alpha = step_alpha(self.pcb["alpha"], step, self.steps) if self.pcb is not None else 0.0
            active = self.gate_open()
            regularised = regularised or (active and alpha > 0 and self.training)
            losses = self._step_losses(logits, labels, alpha, active, self.step_output(output, step))
            for key, value in losses.items():
                weighted = self.step_weights[step] * value
                totals[key] = totals[key] + weighted if key in totals else weighted
        if regularised:
            self.regularised_iterations += 1
        return totals


@BOX_HEADS.register("iterative")
class RecurrentBoxHead(IterativeBoxHead):
    """``IterativeBoxHead`` with feature refinement (PCB's iterative paradigm); params as the parent."""


@BOX_HEADS.register("dsn")
class DeepSupervisionBoxHead(IterativeBoxHead):
    """Deep supervision (PCB Table 4's DSN): the step losses without feature refinement."""

    def __init__(self, num_classes: int, background: Background, num_box_deltas: int, **params: Any) -> None:
        params["refine"] = False
        super().__init__(num_classes, background, num_box_deltas, **params)


@BOX_HEADS.register("pcb")
class PCBBoxHead(IterativeBoxHead):
    """The full official PCB head: 3-step iterative head with the PCB regulariser (variant defaults)."""

    def __init__(self, num_classes: int, background: Background, num_box_deltas: int, **params: Any) -> None:
        params.setdefault("pcb", {})
        if params["pcb"] is None:
            params["pcb"] = {}
        super().__init__(num_classes, background, num_box_deltas, **params)


__all__ = [
    "ConfusionMatrixEMA",
    "DEFAULT_ALPHA",
    "IterativeBoxHead",
    "fightback_targets",
    "foreground_distribution",
    "pcb_ce_loss",
    "pcb_eqlv2_loss",
    "pcb_eqlv2_targets",
    "pcb_seesaw_losses",
    "step_alpha",
]
