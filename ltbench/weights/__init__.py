"""Pretrained weights (ImageNet backbones, COCO-trained detectors) for paper-scale runs.

Adapters call ``resolve(run_config)`` at train and at predict time: it returns local files, never downloads,
and names the ``ltbench weights fetch`` command when a file is missing. ``ltbench weights fetch`` downloads
what a plan needs, on a machine with internet access, into one cache. Every file, its source and how it is
checked: ``ltbench.weights.manifest``; where files are looked for: ``ltbench.weights.cache``.
"""

from ltbench.weights.cache import (
    ENV_CACHE, ENV_FILES, ENV_MIRROR, Override, Settings, export_config, load_settings, locate, resolve,
)
from ltbench.weights.manifest import FILES, WeightFile, weight_id

__all__ = [
    "ENV_CACHE", "ENV_FILES", "ENV_MIRROR", "FILES", "Override", "Settings", "WeightFile", "export_config",
    "load_settings", "locate", "resolve", "weight_id",
]
