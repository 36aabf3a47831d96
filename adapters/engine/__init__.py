"""The training engine shared by the adapters, in detectron2's shape: a loop with hooks.

- ``randomness``: re-seeding from (seed, iteration, rank), RNG states, thread limits;
- ``schedule``: the learning rate as a pure function of the iteration, and training progress in epochs;
- ``stream``: the resumable stream of training images (``IndexStream``) over ``ltbench.methods.samplers``;
- ``trainer``: ``Trainer``, the torchvision adapter's loop; Lightning Fabric runs its devices, data-parallel
  ranks and mixed precision;
- ``hooks``: the hooks every adapter uses, under the same names in each engine — ``Reseed``,
  ``LRScheduler``, ``ProgressGate`` (a method's start gate, PCB), ``PeriodicCheckpointer`` (by iteration,
  by wall time, and on the time-limit signal) and ``PeriodicWriter`` (log lines with losses, lr and ETA).
  The mmdet adapter registers mmengine hooks of these names, the detectron2 adapter detectron2
  ``HookBase`` subclasses; ``docs/CONTRACTS.md`` has the table.
"""
