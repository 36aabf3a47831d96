"""``ltbench explain``: trace a table cell to its YAML row, its run and the code behind it.

- ``select``: name a cell the way the printed table shows it (row label or printed attribute cell, filters).
- ``origins``: where each key of the row's resolved run and view config comes from.
- ``code_locations``: file:line of the box head, loss, sampler, stage-2 method and view of a run.
- ``report``: ``explain(...)`` and its text / JSON rendering.

Nothing here is imported by spec loading or planning; ``code_locations`` imports torch (the heads).
"""

from __future__ import annotations
