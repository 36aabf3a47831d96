"""The detectron2 adapter: ``adapter.Detectron2Adapter`` (config in ``config.py``, registry entries in ``registration.py``)."""

from adapters.detectron2.adapter import Detectron2Adapter

__all__ = ["Detectron2Adapter"]
