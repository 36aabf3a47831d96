"""Instance-count bins: categories grouped by their number of training instances.

- LVIS (SimCal Table 1, BAGS Sec. 5.1): (0, 10), [10, 100), [100, 1000), [1000, inf).
- COCO-LT (SimCal Table 7): [1, 20), [20, 400), [400, 8000), [8000, inf).

Both schemes leave out categories with 0 training instances (SimCal's "(0, 10)" and "[1, 20)" start
above 0): such a category belongs to no bin, so it counts towards AP/APr/APc/APf but not AP1..AP4.

Training counts come from the training annotation file the caller names: the number of annotations
per ``category_id`` (the file's own ``instance_count`` fields are not trusted, since a subset keeps them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from os import PathLike
from typing import Any

from ltbench.errors import LtbenchError

# name -> list of half-open [low, high) intervals over training instance counts.
BIN_SCHEMES: dict[str, tuple[tuple[float, float], ...]] = {
    "lvis": ((1, 10), (10, 100), (100, 1000), (1000, math.inf)),
    "coco-lt": ((1, 20), (20, 400), (400, 8000), (8000, math.inf)),
}


def bin_edges(scheme: str) -> tuple[tuple[float, float], ...]:
    if scheme not in BIN_SCHEMES:
        from ltbench.errors import did_you_mean

        raise LtbenchError(
            f"unknown bin scheme {scheme!r}{did_you_mean(scheme, BIN_SCHEMES)}",
            key="bins",
            expected=" or ".join(BIN_SCHEMES),
        )
    return BIN_SCHEMES[scheme]


def bin_index(count: int, scheme: str = "lvis") -> int:
    """0-based bin (0..3) of a training instance count, or -1 when it falls in no bin (count 0):
    ``ltbench.data.lvis_meta.instance_bin`` with the scheme's edges."""
    from ltbench.data.lvis_meta import instance_bin

    return instance_bin(count, scheme_edges(scheme), empty=-1)


def scheme_edges(scheme: str) -> tuple[float, ...]:
    """The upper edges of every bin but the last, e.g. (10, 100, 1000) for ``lvis``."""
    return tuple(high for _, high in bin_edges(scheme)[:-1])


def bin_label(idx: int, scheme: str = "lvis") -> str:
    low, high = bin_edges(scheme)[idx]
    if low == 1 and scheme == "lvis":
        return f"(0, {int(high)})"
    return f"[{int(low)}, {'inf' if math.isinf(high) else int(high)})"


def bins_of(category_ids: Sequence[int], counts: Mapping[int, int], scheme: str = "lvis") -> list[int]:
    """Bin of each category id (counts missing from ``counts`` are 0, hence bin -1)."""
    return [bin_index(int(counts.get(int(cid), 0)), scheme) for cid in category_ids]


def training_instance_counts(train_ann: str | PathLike[str]) -> dict[int, int]:
    """Training instances per category id, counted from the annotations of ``train_ann``
    (``ltbench.data.lvis_meta.count_from_annotations``). Categories without annotation get 0."""
    from ltbench.data.lvis_meta import count_from_annotations
    from ltbench.evaluation.jsonload import load_json

    data = load_json(train_ann)
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise LtbenchError(
            "not an LVIS/COCO annotation file", path=train_ann, key="annotations",
            expected="an object with an 'annotations' list",
        )
    counts = {int(c["id"]): 0 for c in data.get("categories", []) if isinstance(c, dict) and "id" in c}
    counts.update(count_from_annotations(data, str(train_ann))[1])
    return counts
