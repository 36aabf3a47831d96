"""Framework adapters: thin glue between a resolved run config and torchvision / mmdetection / detectron2.

``get_adapter(framework)`` returns an ``adapters.interface.Adapter``. ``ADAPTERS`` is the registry of the
frameworks (the spec vocabulary's ``FRAMEWORKS``); each framework's package is imported only when its
adapter is asked for, so importing this package costs nothing.

Layout (detectron2's engine shape): ``interface`` (the contract), ``engine/`` (training loop, hooks,
randomness, schedule, image stream, devices), ``checkpoints``, ``records`` (LVIS data), ``wiring`` (methods),
``prediction`` and ``outputs``; one package per framework: ``torchvision/``, ``mmdet/``, ``detectron2/``.
"""

from __future__ import annotations

import importlib

from ltbench.registry import Registry

#: framework name -> "module:Class" of its adapter (imported on first use)
ADAPTERS = Registry("framework", key="framework")
ADAPTERS.register("torchvision")("adapters.torchvision:TorchvisionAdapter")
ADAPTERS.register("mmdet")("adapters.mmdet:MMDetAdapter")
ADAPTERS.register("detectron2")("adapters.detectron2:Detectron2Adapter")


def adapter_class(framework: str):  # -> type[adapters.interface.Adapter]
    """The adapter class of ``framework``: its ``SUPPORTED_*`` declarations and ``unsupported(run, view)``
    without importing the framework itself."""
    module_name, class_name = ADAPTERS.get(framework).split(":")
    return getattr(importlib.import_module(module_name), class_name)


def get_adapter(framework: str):  # -> adapters.interface.Adapter
    """The adapter of ``framework`` ("torchvision", "mmdet" or "detectron2")."""
    return adapter_class(framework)()


__all__ = ["ADAPTERS", "adapter_class", "get_adapter"]
