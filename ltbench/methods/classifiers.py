"""Classifier layers of the box head: features (R, in_features) -> logits (R, out_features).

Every box head builds its classifier with ``build_classifier(spec, in_features, out_features)`` where
``spec`` is the run config's ``classifier`` object:

- ``{"name": "linear"}``: ``nn.Linear`` with weight ~ N(0, 0.01), bias 0 (mmdet/detectron2 ``cls_score``).
- ``{"name": "cosine", "scale": 20, "learnable": true, "bias": false}``: cosine classifier
  ``s * <x/|x|, w_j/|w_j|>`` (DisAlign's ``NormalizedLinear``: feature and weight normalised, learnable
  scale initialised at 20, no bias; the background row is cosine too). ``learnable: false`` fixes s
  (``learnable_scale`` is the spec files' spelling of the same option; ``cosine_background: true`` is the
  only supported value: the background row is cosine as in DisAlign).
- ``{"name": "normed_linear", "temperature": 20}``: mmdet's ``NormedLinear`` as in the Seesaw LVIS configs
  (fixed temperature 20, bias kept, ``x / (|x| + eps)``).

The output column layout is the head's (e.g. C+1 in the background convention); classifiers do not
care about it.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ltbench.errors import LtbenchError

#: Names accepted in a ``classifier`` spec, with the keys each accepts (besides "name").
CLASSIFIER_OPTIONS: dict[str, tuple[str, ...]] = {
    "linear": ("bias",),
    "cosine": ("scale", "learnable", "learnable_scale", "cosine_background", "bias", "eps"),
    "normed_linear": ("temperature", "bias", "eps", "power"),
}


class NormalizedLinear(nn.Module):
    """Cosine classifier: ``logits = scale * (x / (|x|^power + eps)) @ (W / (|W_j|^power + eps)).T + b``.

    Args:
        in_features, out_features: shapes (R, in) -> (R, out).
        scale: s, the initial (learnable) or fixed scale.
        learnable: whether s is a parameter (``logit_scale``) or a fixed buffer.
        bias: add a learnable per-class bias (mmdet NormedLinear: yes; DisAlign cosine: no).
        eps: added to the norms (mmdet: 1e-6).
        power: exponent of the norms (mmdet NormedLinear option; 1 = plain cosine).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        scale: float = 20.0,
        learnable: bool = True,
        bias: bool = False,
        eps: float = 1e-6,
        power: float = 1.0,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.eps, self.power = eps, power
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.normal_(self.weight, std=0.01)
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        scale_tensor = torch.tensor(float(scale))
        if learnable:
            self.logit_scale = nn.Parameter(scale_tensor)
        else:
            self.register_buffer("logit_scale", scale_tensor)
        self.learnable = learnable

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_unit = x / (x.norm(dim=1, keepdim=True).pow(self.power) + self.eps)
        w_unit = self.weight / (self.weight.norm(dim=1, keepdim=True).pow(self.power) + self.eps)
        return F.linear(x_unit * self.logit_scale, w_unit, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"scale={self.logit_scale.item():.3g}, learnable={self.learnable}, bias={self.bias is not None}"
        )


def _check_options(spec: dict[str, Any], name: str) -> None:
    allowed = CLASSIFIER_OPTIONS[name]
    unknown = sorted(set(spec) - {"name"} - set(allowed))
    if unknown:
        raise LtbenchError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for classifier {name!r}",
            key="classifier",
            expected="options " + (", ".join(allowed) or "(none)"),
        )


def build_classifier(spec: dict[str, Any] | None, in_features: int, out_features: int) -> nn.Module:
    """Build the classifier described by ``spec`` (None = ``{"name": "linear"}``); (R, in) -> (R, out)."""
    spec = dict(spec or {"name": "linear"})
    name = spec.get("name", "linear")
    if name not in CLASSIFIER_OPTIONS:
        raise LtbenchError(
            f"unknown classifier {name!r}", key="classifier.name", expected="one of " + ", ".join(CLASSIFIER_OPTIONS)
        )
    _check_options(spec, name)
    if name == "linear":
        layer = nn.Linear(in_features, out_features, bias=bool(spec.get("bias", True)))
        nn.init.normal_(layer.weight, std=0.01)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)
        return layer
    if name == "cosine":
        if "learnable" in spec and "learnable_scale" in spec and spec["learnable"] != spec["learnable_scale"]:
            raise LtbenchError(
                "classifier gives both learnable and learnable_scale, with different values",
                key="classifier",
                expected="one of them",
            )
        if not spec.get("cosine_background", True):
            raise LtbenchError(
                "a cosine classifier with a linear background row is not implemented",
                key="classifier.cosine_background",
                expected="true (DisAlign: the background row is cosine too)",
            )
        return NormalizedLinear(
            in_features,
            out_features,
            scale=float(spec.get("scale", 20.0)),
            learnable=bool(spec.get("learnable", spec.get("learnable_scale", True))),
            bias=bool(spec.get("bias", False)),
            eps=float(spec.get("eps", 1e-6)),
        )
    return NormalizedLinear(  # normed_linear
        in_features,
        out_features,
        scale=float(spec.get("temperature", 20.0)),
        learnable=False,
        bias=bool(spec.get("bias", True)),
        eps=float(spec.get("eps", 1e-6)),
        power=float(spec.get("power", 1.0)),
    )
