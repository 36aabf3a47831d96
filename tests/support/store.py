"""A resolved run config and view for the store tests (values are irrelevant to the store)."""

from __future__ import annotations

import json


def fake_run(seed: int = 0, **over) -> dict:
    """A resolved run config shaped like CONTRACTS.md (values are irrelevant to the store)."""
    import hashlib

    body = {"scale": "smoke", "framework": "torchvision", "dataset": "lvis_v0.5", "seed": seed, "loss": {"name": "ce"}}
    body.update(over)
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:8]
    return {"id": f"softmax-{digest}", **body}


VIEW = {"id": "plain", "name": "plain"}
