"""Fixtures of the adapter tests: the framework under test, a trained tiny baseline per framework, and a
framework's own kill point for the resume tests."""

from __future__ import annotations

import pytest

from support.runs import tiny_run

FRAMEWORKS = ("torchvision", "mmdet", "detectron2")
#: the tiny baseline each framework trains: its own sampler flavour (mmdet's ceil RFS, detectron2's stochastic)
BASELINE_SAMPLER = {"torchvision": {"name": "random"}, "mmdet": {"name": "rfs", "t": 0.3, "rounding": "ceil"},
                    "detectron2": {"name": "rfs", "t": 0.3}}


def skip_unless_available(framework: str) -> None:
    from adapters import get_adapter

    ok, reason = get_adapter(framework).available()
    if not ok:
        pytest.skip(reason)


@pytest.fixture(params=FRAMEWORKS)
def framework(request) -> str:
    """Each adapter in turn (mmdet: the mmdet extra; detectron2: skipped where it is not built)."""
    marks = {"mmdet": "mmdet", "detectron2": "detectron2"}
    if request.param in marks:
        request.applymarker(getattr(pytest.mark, marks[request.param]))
    skip_unless_available(request.param)
    return request.param


@pytest.fixture(scope="module")
def trained_baselines(tmp_path_factory, tiny_data):
    """framework -> (run, workdir, final checkpoint): trained once per module, on first use."""
    import torch

    cache: dict[str, tuple] = {}

    def get(framework: str) -> tuple:
        if framework not in cache:
            from adapters import get_adapter

            run = tiny_run(id=f"tiny-{framework}-00000000", framework=framework, sampler=BASELINE_SAMPLER[framework])
            workdir = tmp_path_factory.mktemp(f"{framework}_baseline")
            previous = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                cache[framework] = (run, workdir, get_adapter(framework).train(run, workdir, tiny_data))
            finally:
                torch.set_num_threads(previous)
        return cache[framework]

    return get


@pytest.fixture
def trained(framework, trained_baselines):
    return trained_baselines(framework)
