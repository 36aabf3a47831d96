"""The torchvision adapter: ``adapter.TorchvisionAdapter`` (model in ``model.py`` / ``roi_heads.py``, data in ``data.py``)."""

from adapters.torchvision.adapter import TorchvisionAdapter

__all__ = ["TorchvisionAdapter"]
