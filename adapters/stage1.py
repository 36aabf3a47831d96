"""The stage-1 model a stage-2 run starts from: which runs built it, its architecture, and loading it by name.

A stage-2 run (``stage2:`` in its config) starts from the final checkpoint of its stage-1 run. That run may
itself be a stage-2 run (BAGS Table 5 (3)/(4) fine-tune the BAGS model of row (1), whose stage 1 is a plain
Faster R-CNN): the runs whose training made the stage-1 model form a chain, root first
(``stage1_chain``), kept in ``workdir/stage1_chain.json`` so that prediction, and a later stage, rebuild it
without the stage-1 work directory.

Which architecture the stage-1 checkpoint is loaded into (``stage1_architecture``):

- the run keeps the stage-1 run's head (``stage2.keep_head: <the stage-1 run's stage2 name>``): the whole
  chain, so the trained stage-1 head (BAGS' group softmax, C + 1 + groups logits) is rebuilt as it was;
- otherwise the stage-1 run's own detector and first-stage head (its config without its stage-2 method),
  as the official two-stage code configures stage 2 from the stage-1 recipe.

``load_stage1`` then loads, by name, every tensor of the checkpoint that fits, as mmcv's
``load_checkpoint(strict=False)`` does in the official code; box-head tensors whose layout differs
(another classification layout: a stage-1 head with more or fewer logits) are re-initialised on purpose and
named; a tensor outside the box head that does not fit is an error (another backbone, FPN or mask head means
another stage-1 model). ``stage2_changes`` names what the stage-2 method itself re-initialises or adds
around the stage-1 head. Both go to ``workdir/stage2_init.json`` and the log (``write_report``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from adapters.interface import run_label
from ltbench.errors import LtbenchError

CHAIN_FILE = "stage1_chain.json"
LEGACY_STAGE1_FILE = "stage1_run_config.json"
REPORT_FILE = "stage2_init.json"


def stage1_chain(stage1_workdir: Path, stage1_config: dict) -> list[dict]:
    """Configs of the runs whose training made the stage-1 model, root first, the stage-1 run last."""
    from ltbench.io import read_json

    if not stage1_config.get("stage2"):
        return [stage1_config]
    stage1_workdir = Path(stage1_workdir)
    for name in (CHAIN_FILE, LEGACY_STAGE1_FILE):
        path = stage1_workdir / name
        if path.is_file():
            before = read_json(path)
            return [*(before if isinstance(before, list) else [before]), stage1_config]
    raise LtbenchError(f"the stage-1 run {stage1_config.get('id')!r} is a stage-2 run, but its work directory does not "
                       "say what it started from", path=stage1_workdir / CHAIN_FILE,
                       expected=f"{CHAIN_FILE} (or {LEGACY_STAGE1_FILE}) written when that run trained")


def read_chain(workdir: Path) -> list[dict]:
    """The stage-1 chain recorded in a stage-2 run's work directory (older ones: the stage-1 config alone)."""
    from ltbench.io import read_json

    workdir = Path(workdir)
    if (workdir / CHAIN_FILE).is_file():
        return list(read_json(workdir / CHAIN_FILE))
    return [read_json(workdir / LEGACY_STAGE1_FILE)]


def stage1_architecture(run_config: dict, chain: list[dict]) -> list[dict]:
    """The configs whose models and stage-2 heads, applied in order, make the model the stage-1 checkpoint is
    loaded into: the whole chain when the run keeps the stage-1 run's head, else the stage-1 run alone."""
    stage2 = run_config.get("stage2") or {}
    keep = stage2.get("keep_head")
    last = chain[-1]
    if keep is None:
        return [last]
    made_by = (last.get("stage2") or {}).get("name")
    if made_by != keep:
        raise LtbenchError(f"stage2.keep_head is {keep!r}, but the stage-1 run {last.get('id')!r} was "
                           + (f"trained with stage-2 method {made_by!r}" if made_by else "not a stage-2 run"),
                           path=run_label(run_config), key="stage2.keep_head",
                           expected=f"the stage-1 run's own stage2 name ({made_by or 'none: drop keep_head'})")
    return list(chain)


def load_stage1(model: Any, state: dict, box_head_prefixes: tuple[str, ...], *, what: str) -> dict:
    """Load the tensors of ``state`` whose name and shape fit ``model``; box-head tensors that do not (another
    classification layout) keep their fresh initialisation, and are named; anything else that does not fit
    is an error. Returns the report (counts and names)."""
    own = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and tuple(own[k].shape) == tuple(v.shape)}
    reshaped = sorted(k for k in state if k in own and k not in fitting)
    missing = sorted(k for k in own if k not in state)
    unexpected = sorted(k for k in state if k not in own)
    outside = [k for k in (*reshaped, *missing, *unexpected) if not k.startswith(box_head_prefixes)]
    if outside:
        shown = ", ".join(outside[:6]) + (f" and {len(outside) - 6} more" if len(outside) > 6 else "")
        raise LtbenchError(f"the stage-1 model {what} does not fit this run's model outside the box head: {shown}",
                           key="stage1", expected="a stage-1 run of the same detector, backbone and mask head")
    model.load_state_dict(fitting, strict=False)
    return {
        "loaded": len(fitting), "tensors": len(own),
        "reinitialised": [f"{k} {list(state[k].shape)} -> {list(own[k].shape)}" for k in reshaped]
        + [f"{k} (not in the stage-1 checkpoint)" for k in missing],
        "left_out": unexpected,
    }


def stage2_changes(stage1_state: dict, stage2_head: Any, prefix: str) -> dict:
    """What the stage-2 method re-initialised or added around the stage-1 head, by name: a tensor of the new
    head that ends in the name of a stage-1 tensor of another shape or other values ("reinitialised"), or
    matches none ("new"). ``stage1_state``: the stage-1 head's state dict (copied before the wrap)."""
    import torch

    reinitialised, new = [], []
    for name, tensor in stage2_head.state_dict().items():
        match = next((s for s in stage1_state if name == s or name.endswith("." + s)), None)
        if match is None:
            new.append(prefix + name)
            continue
        old = stage1_state[match]
        if tuple(old.shape) != tuple(tensor.shape):
            reinitialised.append(f"{prefix}{name} {list(old.shape)} -> {list(tensor.shape)}")
        elif not torch.equal(old.to(tensor.device), tensor):
            reinitialised.append(f"{prefix}{name}")
    return {"stage2_reinitialised": reinitialised, "stage2_new": new}


def write_report(workdir: Path | None, run_config: dict, architecture: list[dict], report: dict) -> dict:
    """``workdir/stage2_init.json`` and one log line: which runs built the stage-1 model, what loaded, what
    the stage-2 run re-initialised and why."""
    from ltbench.io import write_json

    method = (run_config.get("stage2") or {}).get("name")
    full = {"run_id": run_config.get("id"), "stage2": method, "architecture": [c.get("id") for c in architecture], **report}
    changed = full.get("reinitialised", []) + full.get("stage2_reinitialised", [])
    print(f"stage 2 {method!r}: stage-1 model of " + " -> ".join(str(i) for i in full["architecture"])
          + f", {full.get('loaded', '?')}/{full.get('tensors', '?')} tensors loaded by name; re-initialised: "
          + (", ".join(changed) or "none") + f"; new: {', '.join(full.get('stage2_new', [])) or 'none'}",
          file=sys.stderr, flush=True)
    if workdir is not None:
        write_json(Path(workdir) / REPORT_FILE, full)
    return full
