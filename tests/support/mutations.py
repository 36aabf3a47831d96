"""Deliberate bugs for the regression check's mutation tests (tests/workflow/test_regression_mutations.py).

Each mutation is the source of a ``sitecustomize`` module: put its folder first on ``PYTHONPATH`` and every
Python process of a workflow run (Snakemake's jobs: ``ltbench step train``, ``predict``, ``evaluate``) patches
the named function at start-up, before ltbench's own modules import it. A patched function appends its
mutation's name to ``$LTBENCH_MUTATION_LOG`` when it is called, so that a test can tell a mutation that took
effect from one that never ran.
"""

from __future__ import annotations

from pathlib import Path

_PREAMBLE = '''
import os


def _mark(name):
    with open(os.environ["LTBENCH_MUTATION_LOG"], "a") as log:
        log.write(f"{name} {os.getpid()}\\n")
'''

MUTATIONS: dict[str, str] = {
    # Repeat-factor sampling off: every image's repeat factor r(I) is 1, so an RFS run samples uniformly.
    "rfs-disabled": '''
from ltbench.methods import samplers


def repeat_factors(image_categories, t):
    _mark("rfs-disabled")
    return [1.0] * len(list(image_categories))


samplers.repeat_factors = repeat_factors
''',
    # The background index flipped between the framework and the method: the box head's classification loss gets
    # the RoI labels in the other convention (torchvision's background 0 becomes class C, class k becomes k - 1),
    # while inference still reads column 0 as background.
    "background-flipped": '''
from ltbench.methods import heads
from ltbench.methods.conventions import convert_labels

_classification_losses = heads.LogitsBoxHead.classification_losses


def classification_losses(self, output, labels):
    _mark("background-flipped")
    other = "last" if self.background == "first" else "first"
    return _classification_losses(self, output, convert_labels(labels, self.num_classes, self.background, other))


heads.LogitsBoxHead.classification_losses = classification_losses
''',
    # PCB's fight-back soft targets (a column of the confusion matrix) replaced by the one-hot ground truth:
    # the PCB term becomes a second cross-entropy.
    "pcb-one-hot": '''
import torch

from ltbench.methods import pcb


def fightback_targets(matrix, labels_fg, *, normalize_columns=True):
    _mark("pcb-one-hot")
    return torch.nn.functional.one_hot(labels_fg, matrix.shape[1]).to(matrix.dtype)


pcb.fightback_targets = fightback_targets
''',
    # LVIS' federated rule removed: every category that is not in an image's ground truth is treated as
    # verified absent (in its neg_category_ids), so detections of unverified categories count as false positives.
    "federated-rule-removed": '''
from ltbench.evaluation import lvis_inputs

_load_ground_truth = lvis_inputs.load_ground_truth


def load_ground_truth(path, data=None):
    gt = _load_ground_truth(path, data)
    _mark("federated-rule-removed")
    every = [c["id"] for c in gt.data["categories"]]
    present = {}
    for ann in gt.data["annotations"]:
        present.setdefault(ann["image_id"], set()).add(ann["category_id"])
    for img in gt.data["images"]:
        img["neg_category_ids"] = [c for c in every if c not in present.get(img["id"], set())]
    return gt


lvis_inputs.load_ground_truth = load_ground_truth
''',
}


def install(name: str, folder: Path) -> Path:
    """Write mutation ``name`` as ``folder/sitecustomize.py``; returns ``folder`` (for ``PYTHONPATH``)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(_PREAMBLE + MUTATIONS[name])
    return folder
