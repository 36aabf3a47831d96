"""Randomness of a training run: every iteration re-seeds from (seed, iteration, rank), so that RPN/RoI
sampling and augmentation draw the same numbers whether or not the process was restarted in between.

Rank 0 draws exactly what a single-process run draws; other ranks get unrelated seeds (their images differ).
"""

from __future__ import annotations

import os
import random


def iteration_seed(seed: int, iteration: int, rank: int = 0) -> int:
    """A 31-bit seed for (run seed, iteration, rank); distinct iterations and ranks get unrelated seeds."""
    return (int(seed) * 1_000_003 + int(iteration) * 7919 + 12345 + int(rank) * 104_729) % (2**31 - 1)


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators (torch seeds every device's too)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def rng_state() -> dict:
    import numpy as np
    import torch

    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def threads_from_env() -> None:
    """Honour ``LTBENCH_THREADS`` (default: leave torch's choice) -- CI and shared machines set 1-2."""
    value = os.environ.get("LTBENCH_THREADS")
    if value:
        import torch

        torch.set_num_threads(max(1, int(value)))
