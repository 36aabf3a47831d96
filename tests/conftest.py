"""Shared pytest fixtures: paths to the repository and to the real LVIS samples in ../shared."""

from __future__ import annotations

from pathlib import Path

import pytest

from ltbench import paths


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return paths.REPO_ROOT


@pytest.fixture(scope="session")
def lvis_samples() -> Path:
    """``../shared/data/lvis``: real LVIS v0.5 val sample, v1 categories, COCO synset map."""
    if not paths.LVIS_SAMPLES_DIR.is_dir():
        pytest.skip(f"real LVIS samples not found at {paths.LVIS_SAMPLES_DIR} (set LTBENCH_SHARED)")
    return paths.LVIS_SAMPLES_DIR


@pytest.fixture(scope="session")
def papers_dir() -> Path:
    if not paths.PAPERS_DIR.is_dir():
        pytest.skip(f"paper texts not found at {paths.PAPERS_DIR} (set LTBENCH_SHARED)")
    return paths.PAPERS_DIR


@pytest.fixture
def one_thread():
    """Run the test with one torch thread (tests that train or predict: CI has 2 shared cores)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def resnet18_weights(tmp_path_factory) -> Path:
    """A (random) ResNet-18 state dict, for ``model.weights``: it stands in for the ImageNet backbone a paper run
    loads, and with given weights every adapter freezes the backbone's BatchNorm."""
    import torch
    import torchvision

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "r18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory, request):
    """A tiny synthetic LVIS-format dataset (support.tiny_lvis.make_tiny_lvis), one per test module."""
    from support.tiny_lvis import make_tiny_lvis

    return make_tiny_lvis(tmp_path_factory.mktemp(f"tiny_lvis_{request.module.__name__}"))
