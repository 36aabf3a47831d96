"""Framework-agnostic PyTorch implementations of every method in the four papers.

Adapters wire these in; nothing here imports a detection framework. See ``box_head.py`` for the
contract with the adapters and ``conventions.py`` for the background-index conventions.
"""

from __future__ import annotations

from typing import Any


# Thin wrappers so that ``import ltbench.methods`` stays free of torch (``ltbench --help`` imports nothing
# heavy); the implementations are in ``ltbench.methods.dispatch``.
def head_for_run(run_config: Any) -> tuple[str, dict[str, Any]]:
    """Registered head name and params for a resolved run config (see ``dispatch.head_for_run``)."""
    from ltbench.methods.dispatch import head_for_run as impl

    return impl(run_config)


def build_stage2(run_config: Any, stage1_head: Any, **stats: Any) -> Any:
    """Stage-2 head around a trained stage-1 head (see ``dispatch.build_stage2``)."""
    from ltbench.methods.dispatch import build_stage2 as impl

    return impl(run_config, stage1_head, **stats)


def apply_view(view_config: Any, probs: Any, background: str, stats: Any = None) -> Any:
    """(R, C+1) probabilities read through a post-hoc view (see ``dispatch.apply_view``)."""
    from ltbench.methods.dispatch import apply_view as impl

    return impl(view_config, probs, background, stats)


def view_probabilities(head: Any, output: Any, view_config: Any, stats: Any = None) -> Any:
    """``apply_view`` with the head's own per-step / stage-1 probabilities filled in."""
    from ltbench.methods.dispatch import view_probabilities as impl

    return impl(head, output, view_config, stats)


__all__ = ["apply_view", "build_stage2", "head_for_run", "view_probabilities"]
