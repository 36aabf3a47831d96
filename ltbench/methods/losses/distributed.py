"""The one collective the stateful losses need: a sum over processes when torch.distributed is up."""

from __future__ import annotations

import torch


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` in place over all processes if torch.distributed is initialised with > 1 process;
    otherwise leave it unchanged. Returns the tensor."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor
