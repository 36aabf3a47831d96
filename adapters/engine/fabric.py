"""Lightning Fabric for the torchvision adapter: one process per rank, started by a launcher.

``ltbench step train`` starts the ranks with ``torchrun`` on one node, or with ``srun`` tasks across
nodes (the SLURM profile's ``tasks``/``nodes`` resources); a plain ``ltbench train`` is one process.
``build_fabric`` joins whatever started this process — explicitly, not by guessing: torchrun's variables
(``TORCHELASTIC_RUN_ID``) win over SLURM's, because a torchrun inside a SLURM job still sees
``SLURM_NTASKS=1`` — and Fabric's DDP then averages gradients over the ranks (NCCL on GPUs, gloo on CPUs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class World:
    """The ranks of this training job, from the launcher's environment."""

    size: int = 1
    rank: int = 0
    local_size: int = 1
    launcher: str = "none"  # none | torchrun | srun

    @property
    def nodes(self) -> int:
        return max(1, self.size // max(1, self.local_size))


def world_from_env(environ: dict | None = None) -> World:
    env = os.environ if environ is None else environ
    if "TORCHELASTIC_RUN_ID" in env and int(env.get("WORLD_SIZE", "1")) > 1:
        return World(int(env["WORLD_SIZE"]), int(env.get("RANK", "0")), int(env.get("LOCAL_WORLD_SIZE", env["WORLD_SIZE"])), "torchrun")
    if int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in env:
        size = int(env["SLURM_NTASKS"])
        per_node = int(env.get("SLURM_NTASKS_PER_NODE", str(size)).split("(")[0])
        return World(size, int(env["SLURM_PROCID"]), per_node, "srun")
    return World()


def join_cpu_process_group(world: World) -> None:
    """Join the gloo process group of this CPU rank, found through Lightning's cluster environment of the
    launcher (torchrun's or SLURM's variables). For mmengine, whose launchers call ``torch.cuda.set_device``
    and so need a GPU: its Runner skips its own initialisation when the group exists."""
    import torch.distributed as dist
    from lightning_fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    if world.size == 1 or dist.is_initialized():
        return
    environment = TorchElasticEnvironment() if world.launcher == "torchrun" else SLURMEnvironment(auto_requeue=False)
    os.environ.setdefault("LOCAL_RANK", str(environment.local_rank()))  # the Runner reads it
    dist.init_process_group("gloo", init_method=f"tcp://{environment.main_address}:{environment.main_port}",
                            rank=environment.global_rank(), world_size=environment.world_size())


def build_fabric(device: str, precision: str, *, find_unused_parameters: bool = True) -> Any:
    """A launched ``lightning_fabric.Fabric`` for this process's rank (see the module docstring)."""
    from lightning_fabric import Fabric
    from lightning_fabric.plugins.environments import LightningEnvironment, SLURMEnvironment, TorchElasticEnvironment
    from lightning_fabric.strategies import DDPStrategy

    world = world_from_env()
    if world.size == 1:  # one process, whatever SLURM or torchrun variables it inherited
        fabric = Fabric(accelerator=device, devices=1, num_nodes=1, precision=precision, strategy="auto",
                        plugins=[LightningEnvironment()])
    else:
        environment = TorchElasticEnvironment() if world.launcher == "torchrun" else SLURMEnvironment(auto_requeue=False)
        strategy = DDPStrategy(cluster_environment=environment, process_group_backend="nccl" if device == "cuda" else "gloo",
                               find_unused_parameters=find_unused_parameters)
        fabric = Fabric(accelerator=device, devices=world.local_size, num_nodes=world.nodes, precision=precision, strategy=strategy)
    fabric.launch()
    return fabric
