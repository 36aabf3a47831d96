"""Method wiring: what every adapter asks ``ltbench.methods`` for, in one place.

- the run's box head: ``head_config(run_config, class_stats)`` is a JSON-able description (registered name,
  params, class statistics) that mmdet/detectron2 configs can carry; ``build_head(config, ...)`` builds it;
- the stage-2 head around a trained stage-1 head (``build_stage2_head``), with fine-tuning's freezing
  (``unfreeze_for_finetune``) and frozen BatchNorm (``keep_batchnorm_in_eval``);
- the view a prediction reads its probabilities through (``view_function``, ``confusion_source``);
- Seesaw's normed mask predictor (``normed_conv_class``), shared by torchvision and detectron2.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable

from ltbench.errors import LtbenchError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from adapters.records import LvisSplit
    from ltbench.data.lvis_meta import ClassStats


def head_config(run_config: dict, class_stats: ClassStats) -> dict:
    """``{"name": registered head, "params": {...}, "class_stats": {...}}`` of the run's box head (JSON)."""
    from ltbench.methods import head_for_run

    name, params = head_for_run(run_config)
    return {"name": name, "params": dict(params or {}), "class_stats": dataclasses.asdict(class_stats)}


def build_head(config: dict, *, num_classes: int, background: str, num_box_deltas: int, in_channels: int,
               hidden: int, pool_size: int = 7) -> Any:
    """The ``BoxHead`` of a ``head_config``: C = ``num_classes``, D = ``num_box_deltas`` box deltas, in the
    adapter's ``background`` convention, on (R, in_channels, pool_size, pool_size) RoI features."""
    from ltbench.data.lvis_meta import ClassStats
    from ltbench.methods import build_box_head

    stats = ClassStats(**config["class_stats"])
    return build_box_head(config["name"], num_classes=num_classes, background=background, num_box_deltas=num_box_deltas,
                          in_channels=in_channels, pool_size=pool_size, hidden=hidden, class_stats=stats, **config["params"])


def build_stage2_head(run_config: dict, stage1_head: Any, split: LvisSplit) -> Any:
    """``ltbench.methods.build_stage2`` with the training split's class statistics."""
    from ltbench.methods import build_stage2

    return build_stage2(run_config, stage1_head, split.class_stats)


def classification_losses(head: Any, output: Any, labels: torch.Tensor) -> dict:
    """``head.classification_losses`` in float32 whatever the autocast around it: under mixed precision the
    logits come in float16/bfloat16, but the losses and PCB's confusion-matrix statistics are float32, as the
    official code keeps them (mmdet's ``force_fp32`` on the box head's loss). A no-op in float32 training."""
    import dataclasses

    import torch

    def to_float(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return value.float() if value.is_floating_point() else value
        if isinstance(value, list):
            return [to_float(v) for v in value]
        if isinstance(value, dict):
            return {k: to_float(v) for k, v in value.items()}
        return value

    output = type(output)(**{f.name: to_float(getattr(output, f.name)) for f in dataclasses.fields(output)})
    with torch.autocast(device_type=labels.device.type, enabled=False):
        return head.classification_losses(output, labels)


def unfreeze_for_finetune(model: Any, run_config: dict, head_prefix: str | tuple[str, ...], stem_prefixes: tuple[str, ...],
                          stage_prefix: str, first_stage: int = 1) -> None:
    """Stage-2 ``finetune`` recipes with ``frozen_stages: k`` train the whole detector except the backbone
    stem and its first k stages (mmdet's ``frozen_stages`` semantics); the box head's own trainable set is
    ``build_stage2``'s. Without ``frozen_stages`` stage 2 trains the new head only (nothing to do here).

    ``head_prefix``: the box head's parameter prefix (a tuple: one per cascade stage). ``stage_prefix`` is the
    backbone stage name pattern with ``{}`` for the stage number, counted from ``first_stage``
    (torchvision/mmdet ``layer1``, detectron2 ``res2``)."""
    stage2 = run_config.get("stage2") or {}
    if "frozen_stages" not in stage2:
        return
    k = int(stage2["frozen_stages"])
    frozen = stem_prefixes + tuple(stage_prefix.format(first_stage + i) for i in range(k))
    for name, parameter in model.named_parameters():
        if name.startswith(head_prefix):
            continue
        parameter.requires_grad_(not name.startswith(frozen))


def keep_batchnorm_in_eval(model: Any) -> None:
    """Pin every BatchNorm layer in eval mode, also under a later ``model.train()``: stage 2 trains only
    the new head, so the stage-1 BN statistics must not move either."""
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()
            module.train = lambda mode=True, _m=module: _m  # type: ignore[method-assign]


def confusion_source(view_config: dict) -> str | None:
    """"val"/"train" when the view needs a plain pass to collect the confusion matrix, else None."""
    from ltbench.methods import CONFUSION_VIEWS

    view_config = view_config or {}
    if view_config.get("name") not in CONFUSION_VIEWS:
        return None
    source = view_config.get("source", "val")
    if source not in ("val", "train"):
        raise LtbenchError(f"unknown confusion-matrix source {source!r}", key="view.source", expected="val or train")
    return source


def view_function(view_config: dict, stats: dict) -> Callable[[Any, Any], torch.Tensor]:
    """``(head, BoxHeadOutput) -> probs (R, C+1)`` for a view: ``ltbench.methods.view_probabilities``,
    which reads recurrent steps and stage-1 probabilities from the head and applies post-hoc
    calibrations (``stats``: class counts, and ``cm_sum``/``cm_count`` for the confusion views)."""
    from ltbench.methods import view_probabilities

    view_config = dict(view_config or {"name": "plain"})
    if view_config.get("name", "plain") == "plain":
        return lambda head, output: head.probabilities(output)
    return lambda head, output: view_probabilities(head, output, view_config, stats)


def normed_conv_class() -> type:
    """1x1 conv on L2-normalised inputs and weights, times ``scale`` (Seesaw's "normed mask" predictor):
    x (N, C_in, H, W) -> (N, C_out, H, W). Same tensor names as ``nn.Conv2d``."""
    import torch
    import torch.nn.functional as F

    class NormedConv2d(torch.nn.Conv2d):
        def __init__(self, in_channels: int, out_channels: int, scale: float, eps: float = 1e-6) -> None:
            super().__init__(in_channels, out_channels, 1)
            torch.nn.init.normal_(self.weight, std=0.01)
            torch.nn.init.zeros_(self.bias)
            self.scale, self.eps = scale, eps

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            weight = self.weight / (self.weight.norm(dim=1, keepdim=True) + self.eps)
            x = self.scale * x / (x.norm(dim=1, keepdim=True) + self.eps)
            return F.conv2d(x, weight, self.bias)

    return NormedConv2d


def mask_head_name(run_config: dict) -> str:
    """``standard`` or ``normed`` (Seesaw's normed mask); anything else is an error naming the key."""
    name = (run_config.get("mask_head") or {"name": "standard"}).get("name")
    if name not in ("standard", "normed"):
        raise LtbenchError(f"unknown mask head {name!r}", key="mask_head.name", expected="standard or normed")
    return name
