"""Framework-agnostic PyTorch implementations of every method in the four papers.

Adapters wire these in; nothing here imports a detection framework. ``box_head.py`` holds the contract
with the adapters (and never imports its subclasses); ``conventions.py`` the background conventions.

Importing the package registers everything, so each registry holds every name the spec vocabulary
(``ltbench.spec.vocab``) allows:

- ``BOX_HEADS``: box heads (``heads``, ``pcb``, ``two_stage``), reached from a run through ``head_for_run``;
- ``STAGE2_METHODS``: stage-2 builders (``stage2``), reached through ``build_stage2``;
- ``VIEWS``: post-hoc views (``views``), reached through ``apply_view`` / ``view_probabilities``;
- ``IMAGE_SAMPLERS``: training image orders (``samplers``).

``import ltbench.methods`` imports torch: the CLI imports it only inside the commands that train or predict.
"""

from __future__ import annotations

from ltbench.methods import bags_ablation, heads, pcb, two_stage  # noqa: F401  (register the box heads)
from ltbench.methods.box_head import BOX_HEADS, BoxHead, BoxHeadOutput, build_box_head
from ltbench.methods.dispatch import head_for_run
from ltbench.methods.samplers import IMAGE_SAMPLERS
from ltbench.methods.stage2 import STAGE2_METHODS, build_stage2
from ltbench.methods.views import CONFUSION_VIEWS, VIEWS, apply_view, view_probabilities

__all__ = [
    "BOX_HEADS", "CONFUSION_VIEWS", "IMAGE_SAMPLERS", "STAGE2_METHODS", "VIEWS", "BoxHead", "BoxHeadOutput",
    "apply_view", "build_box_head", "build_stage2", "head_for_run", "view_probabilities",
]
