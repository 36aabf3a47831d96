"""The mmdetection 3.3 adapter: ``adapter.MMDetAdapter`` (config in ``config.py``, registry entries in ``registration.py``)."""

from adapters.mmdet.adapter import MMDetAdapter

__all__ = ["MMDetAdapter"]
