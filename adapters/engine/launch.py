"""Starting the ranks of a data-parallel training job with each framework's own launcher.

``ltbench train --ranks N`` (N > 1) in a process that no launcher started yet:

- torchvision and mmdet: ``torch.distributed.run`` (torchrun) starts N processes of the same command on
  this node; each joins the process group from torchrun's variables (Lightning Fabric's
  ``TorchElasticEnvironment``; mmengine's ``launcher="pytorch"``).
- detectron2: ``detectron2.engine.launch`` spawns the N workers itself (in ``adapters.detectron2``), so the
  command runs in this process.
- ``--launcher srun``: the job's SLURM tasks are the ranks (several nodes); ``srun`` starts N copies of
  the command, each reads ``SLURM_PROCID``/``SLURM_NTASKS`` (Fabric's ``SLURMEnvironment``; mmengine's
  ``launcher="slurm"``; detectron2's ``launch`` with one task per node).

The exit status of the ranks is the command's; when the ranks stopped on the time-limit signal (rank 0
leaves ``preempted.json`` in the work directory) the launcher's own failure status becomes 75 again, so
that the workflow resubmits the job.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from ltbench.errors import LtbenchError

LAUNCHERS = ("torchrun", "srun")
#: set in the ranks a launcher started, so that they do not launch again
LAUNCHED_ENV = "LTBENCH_LAUNCHED"


def inside_launcher(environ: dict | None = None) -> bool:
    """Whether this process is one rank of a launched job (torchrun, srun tasks, or a relaunch of ours)."""
    env = os.environ if environ is None else environ
    return bool(env.get(LAUNCHED_ENV) or env.get("TORCHELASTIC_RUN_ID") or int(env.get("SLURM_NTASKS", "1")) > 1
                and env.get("SLURM_STEP_ID") not in (None, ""))


def relaunch(argv: Sequence[str], ranks: int, workdir: Path, launcher: str = "torchrun", *, nodes: int = 1) -> int:
    """Run ``python -m ltbench <argv>`` as ``ranks`` processes under ``launcher`` (srun: over ``nodes`` nodes,
    ``ranks / nodes`` tasks on each); returns the exit status."""
    from adapters.engine import preemption

    if launcher not in LAUNCHERS:
        raise LtbenchError(f"unknown launcher {launcher!r}", key="--launcher", expected=" or ".join(LAUNCHERS))
    env = {**os.environ, LAUNCHED_ENV: "1"}
    command = [sys.executable, "-m", "ltbench", *argv]
    if launcher == "torchrun":
        # --standalone: a rendezvous on this node at a free port (several jobs may share a node)
        full = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}", "-m", "ltbench", *argv]
    else:
        if ranks % nodes:
            raise LtbenchError(f"{ranks} ranks over {nodes} nodes", key="--nodes", expected="a divisor of --ranks")
        # --ntasks-per-node: Lightning's SLURMEnvironment (and multi-node placement) needs it, not --ntasks alone
        full = ["srun", f"--ntasks={ranks}", f"--ntasks-per-node={ranks // nodes}", f"--nodes={nodes}",
                "--kill-on-bad-exit=1", "--export=ALL", *command]
    print(f"launching {ranks} ranks: {' '.join(full)}", file=sys.stderr, flush=True)
    marker = Path(workdir) / preemption.MARKER
    marker.unlink(missing_ok=True)
    code = subprocess.run(full, env=env).returncode
    if code and marker.is_file():  # torchrun/srun report a rank's 75 as their own failure
        return preemption.EXIT_CODE
    return code
