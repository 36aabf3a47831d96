"""Framework adapters: thin glue between a resolved run config and torchvision / mmdetection / detectron2.

``get_adapter(framework)`` returns an ``adapters.base.Adapter``. Framework modules are imported only
when their adapter is asked for, so importing this package costs nothing.
"""

from __future__ import annotations

import importlib

from ltbench.errors import LtbenchError, did_you_mean

#: framework name -> (module, class)
ADAPTERS: dict[str, tuple[str, str]] = {
    "torchvision": ("adapters.torchvision_adapter", "TorchvisionAdapter"),
    "mmdet": ("adapters.mmdet_adapter", "MMDetAdapter"),
    "detectron2": ("adapters.detectron2_adapter", "Detectron2Adapter"),
}


def get_adapter(framework: str):  # -> adapters.base.Adapter
    """The adapter of ``framework`` ("torchvision", "mmdet" or "detectron2")."""
    if framework not in ADAPTERS:
        raise LtbenchError(
            f"unknown framework {framework!r}{did_you_mean(framework, ADAPTERS)}",
            key="framework",
            expected="one of " + ", ".join(ADAPTERS),
        )
    module_name, class_name = ADAPTERS[framework]
    return getattr(importlib.import_module(module_name), class_name)()


__all__ = ["ADAPTERS", "get_adapter"]
