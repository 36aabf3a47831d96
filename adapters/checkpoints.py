"""Checkpoints and the work directory of a training run: what makes a run resumable and finished.

Layout of ``work/<run>/``: ``model_<iter:07d>.pth`` periodic checkpoints (written atomically, then the
``last_checkpoint`` pointer names the newest), ``model_final.pth`` (or the framework's own name), and
``done.json`` written last: a run is finished exactly when ``done.json`` exists and names a checkpoint
that exists. ``schedule.keep_checkpoints`` (default 1, -1 keeps all) bounds how many checkpoints stay on
disk: a resume needs only the newest, and at paper scale each is hundreds of MB.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.interface import DataPaths, run_label
from adapters.records import LvisSplit, load_lvis_split
from ltbench.errors import LtbenchError

LAST_CHECKPOINT = "last_checkpoint"
DONE_FILE = "done.json"
FINAL_CHECKPOINT = "model_final.pth"
#: Checkpoints kept on disk when the schedule does not say (``schedule.keep_checkpoints``).
DEFAULT_KEEP_CHECKPOINTS = 1


def checkpoint_name(iteration: int) -> str:
    return f"model_{iteration:07d}.pth"


def save_checkpoint(workdir: Path, name: str, state: dict, *, update_pointer: bool = True) -> Path:
    """Write ``state`` to ``workdir/name`` atomically, then (optionally) point ``last_checkpoint`` at it."""
    import torch

    from ltbench.io import atomic_open, write_text

    path = Path(workdir) / name
    with atomic_open(path, "wb") as handle:
        torch.save(state, handle)
    if update_pointer:
        write_text(Path(workdir) / LAST_CHECKPOINT, name + "\n")
    return path


def keep_checkpoints(schedule: dict, where: str = "run config") -> int:
    """How many checkpoints stay on disk (the final one counts): ``schedule.keep_checkpoints``, default
    ``DEFAULT_KEEP_CHECKPOINTS``; -1 keeps every one."""
    value = schedule.get("keep_checkpoints", DEFAULT_KEEP_CHECKPOINTS)
    if isinstance(value, bool) or not isinstance(value, int) or value == 0 or value < -1:
        raise LtbenchError(
            f"schedule.keep_checkpoints is {value!r}",
            path=where,
            key="schedule.keep_checkpoints",
            expected="a positive integer, or -1 to keep every checkpoint",
        )
    return value


def prune_checkpoints(workdir: Path, keep: int, *, finished: bool = False) -> list[Path]:
    """Delete all but the newest periodic ``model_<iter>.pth`` so that at most ``keep`` checkpoints
    remain (``model_final.pth`` counts once ``finished``). Never deletes the one ``last_checkpoint``
    points at: call it after the pointer moved, so a kill at any moment leaves a resumable directory.
    Returns the deleted paths."""
    if keep < 0:
        return []
    workdir = Path(workdir)
    pointer = workdir / LAST_CHECKPOINT
    current = pointer.read_text(encoding="utf-8").strip() if pointer.is_file() else None
    periodic = sorted(p for p in workdir.glob("model_*.pth") if p.name != FINAL_CHECKPOINT and p.stem[6:].isdigit())
    allowed = keep - 1 if finished else keep
    doomed = periodic[: max(0, len(periodic) - allowed)]
    deleted = []
    for path in doomed:
        if path.name == current:
            continue
        path.unlink(missing_ok=True)
        deleted.append(path)
    return deleted


def last_checkpoint(workdir: Path) -> Path | None:
    """The checkpoint ``last_checkpoint`` points at, or None when training has not checkpointed yet."""
    pointer = Path(workdir) / LAST_CHECKPOINT
    if not pointer.is_file():
        return None
    name = pointer.read_text(encoding="utf-8").strip()
    path = Path(workdir) / name
    if not path.is_file():
        raise LtbenchError(
            f"last_checkpoint points at {name!r}, which does not exist",
            path=pointer,
            expected="the name of a checkpoint file in the same directory",
            hint="delete the pointer to restart training from scratch",
        )
    return path


@dataclass
class TrainingStart:
    """What every adapter's ``train`` establishes before building its model (``start_training``).

    ``finished``: the final checkpoint when ``done.json`` already exists (return it; nothing else is
    loaded then). ``stage1_config`` / ``stage1_checkpoint``: the stage-1 run of a stage-2 run (its
    config is also copied to ``workdir/stage1_run_config.json``); ``stage1_chain``: the configs of the runs
    that made the stage-1 model, root first (``adapters.stage1``; also in ``workdir/stage1_chain.json``:
    prediction rebuilds the stage-1 architecture from it without the stage-1 work directory)."""

    workdir: Path
    finished: Path | None = None
    split: LvisSplit | None = None
    stage1_config: dict | None = None
    stage1_checkpoint: Path | None = None
    stage1_chain: list[dict] | None = None


def start_training(run_config: dict, workdir: Path, data: DataPaths, stage1_workdir: Path | None) -> TrainingStart:
    """The shared opening of ``Adapter.train``: threads from the environment, the work directory, the
    finished-run short cut, the training split, and the stage-1 run of a stage-2 run."""
    from adapters.engine.randomness import threads_from_env
    from ltbench.io import read_json, write_json

    threads_from_env()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if (workdir / DONE_FILE).is_file():
        return TrainingStart(workdir, finished=final_checkpoint(workdir))
    start = TrainingStart(workdir, split=load_lvis_split(Path(data.train), Path(data.image_root)))
    if run_config.get("stage2"):
        if stage1_workdir is None:
            raise LtbenchError(
                "a stage-2 run needs the stage-1 work directory",
                path=run_label(run_config),
                key="stage1",
                hint=f"pass --stage1-workdir DIR (the work directory of run {run_config.get('stage1')})",
            )
        start.stage1_checkpoint = final_checkpoint(Path(stage1_workdir), what="stage-1 model")
        start.stage1_config = read_json(Path(stage1_workdir) / "run_config.json")
        write_json(workdir / "stage1_run_config.json", start.stage1_config)
        from adapters.stage1 import CHAIN_FILE, stage1_chain

        start.stage1_chain = stage1_chain(Path(stage1_workdir), start.stage1_config)
        write_json(workdir / CHAIN_FILE, start.stage1_chain)
    return start


def load_checkpoint(path: Path) -> dict:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a truncated or foreign file
        raise LtbenchError(f"cannot read checkpoint: {exc}", path=path, expected="a checkpoint written by ltbench train") from None


def final_checkpoint(workdir: Path, *, what: str = "trained model") -> Path:
    """The final checkpoint of a finished training run (``done.json`` must exist)."""
    workdir = Path(workdir)
    done = workdir / DONE_FILE
    if not done.is_file():
        raise LtbenchError(
            f"no {what}: training has not finished in this work directory",
            path=done,
            expected="done.json written by `ltbench train`",
            hint=f"run `ltbench train --run-config R.json --workdir {workdir}` first",
        )
    info = json.loads(done.read_text(encoding="utf-8"))
    path = workdir / info.get("checkpoint", FINAL_CHECKPOINT)
    if not path.is_file():
        raise LtbenchError("done.json names a checkpoint that does not exist", path=done, key="checkpoint")
    return path


def init_checkpoint(run_config: dict, init_workdir: Path | None = None) -> Path | None:
    """The final checkpoint of the run named by ``init_from`` (docs/CONTRACTS.md: it initialises this
    run's whole model), looked for in ``init_workdir`` or ``$LTBENCH_WORK/<init_from>``; None without
    ``init_from``."""
    source = run_config.get("init_from")
    if not source:
        return None
    from ltbench.paths import work_root

    workdir = Path(init_workdir) if init_workdir is not None else work_root() / str(source)
    return final_checkpoint(workdir, what=f"checkpoint of run {source} (init_from)")


def load_matching(module: Any, state: dict, *, what: str) -> tuple[int, int]:
    """Load the tensors of ``state`` whose name and shape fit ``module`` (a model initialised from a run on
    another dataset keeps its own classifier); returns (loaded, total)."""
    own = module.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and tuple(own[k].shape) == tuple(v.shape)}
    if not fitting:
        raise LtbenchError(f"no tensor of {what} fits this model", expected="a checkpoint of the same architecture")
    module.load_state_dict(fitting, strict=False)
    print(f"initialised {len(fitting)}/{len(own)} tensors from {what}", file=sys.stderr, flush=True)
    return len(fitting), len(own)




def write_done(workdir: Path, run_config: dict, checkpoint: str, iterations: int, framework: str,
               training: dict | None = None) -> Path:
    """``done.json``, the last file a finished run writes (its presence means: finished). ``training``: how it
    trained (ranks, devices and their names, precision, batch split, deviations), for the run's records."""
    from ltbench.io import write_json

    path = Path(workdir) / DONE_FILE
    write_json(path, {"run_id": run_config.get("id"), "checkpoint": checkpoint, "iterations": int(iterations),
                      "framework": framework, "finished_at": time.time(), **({"training": training} if training else {})})
    return path
