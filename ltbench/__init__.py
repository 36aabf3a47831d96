"""ltbench: reproduce the result tables of long-tailed LVIS instance-segmentation papers.

The package is import-light on purpose: ``import ltbench`` pulls in no torch, no mmdet, no pandas.
Heavy libraries are imported inside the functions that need them, so ``ltbench --help`` stays fast.
"""

__version__ = "0.1.0"
