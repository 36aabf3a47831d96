"""PCB's confusion-matrix statistics are summed across processes (official: all_gather + sum)."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ltbench.methods.pcb import ConfusionMatrixEMA

PROBS = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.6, 0.2], [0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
LABELS = torch.tensor([0, 1, 0, 0])
SPLIT = ([0, 1], [2, 3])  # RoIs seen by rank 0 and rank 1


def _worker(rank: int, world: int, init_file: str, out_file: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        cm = ConfusionMatrixEMA(3, momentum=0.5)
        index = torch.tensor(SPLIT[rank])
        cm.update(PROBS[index], LABELS[index])
        if rank == 0:
            torch.save({"matrix": cm.matrix, "seen": cm.seen}, out_file)
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not available")
def test_update_sums_statistics_over_processes(tmp_path):
    out_file = tmp_path / "rank0.pt"
    # fork: the children reuse the imported modules (spawn would re-import torch: tens of seconds on 2 cores)
    mp.start_processes(_worker, args=(2, str(tmp_path / "init"), str(out_file)), nprocs=2, join=True, start_method="fork")
    got = torch.load(out_file)
    single = ConfusionMatrixEMA(3, momentum=0.5, distributed=False)
    single.update(PROBS, LABELS)  # one process seeing every RoI
    torch.testing.assert_close(got["matrix"], single.matrix)
    assert got["seen"].tolist() == [3, 1, 0]
