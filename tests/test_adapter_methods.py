"""Every method family of ltbench.methods trained and predicted through the adapters (tiny, CPU).

Stage-1 families go through ``head_for_run`` from run configs (as the plan writes them); a coverage test
checks that together they reach every head registered in ``BOX_HEADS``. Stage-2 methods start from one
trained softmax stage-1 run; post-hoc views read a trained model. torchvision runs everything; mmdet
(when importable) runs one representative per family, since each mmdet run costs a Runner start-up.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from adapters import get_adapter  # noqa: E402
from adapters.mmdet_adapter import mmdet_available  # noqa: E402
from adapters_support import CATEGORY_IDS, make_tiny_lvis, tiny_run  # noqa: E402

MMDET_OK, MMDET_REASON = mmdet_available()
needs_mmdet = pytest.mark.skipif(not MMDET_OK, reason=MMDET_REASON)

TWO_ITERS = {"iterations": 2, "checkpoint_period": 2, "warmup_iters": 1, "steps": [2]}

#: family id -> run-config overrides (vocabulary of workflows/papers/FORMAT.md).
STAGE1_FAMILIES: dict[str, dict] = {
    "softmax": {},
    "cosine": {"classifier": {"name": "cosine"}},
    "eqlv2": {"loss": {"name": "eqlv2"}},
    "seesaw": {"loss": {"name": "seesaw"}, "classifier": {"name": "normed_linear"}},
    "group_softmax": {"loss": {"name": "group_softmax", "bin_edges": [2, 5]}},
    "focal": {"loss": {"name": "focal"}},
    "reweight": {"loss": {"name": "reweight"}},
    "class_margin": {"loss": {"name": "class_margin"}},
    "label_smoothing": {"regularizer": {"name": "label_smoothing"}},
    "online_label_smoothing": {"regularizer": {"name": "online_label_smoothing"}},
    "pcb_ce": {"head": {"name": "iterative", "steps": 3}, "regularizer": {"name": "pcb", "start_fraction": 0.0}},
    "pcb_eqlv2": {"loss": {"name": "eqlv2"}, "head": {"name": "iterative", "steps": 3},
                  "regularizer": {"name": "pcb", "start_fraction": 0.0}},
    "pcb_seesaw": {"loss": {"name": "seesaw"}, "head": {"name": "iterative", "steps": 3},
                   "regularizer": {"name": "pcb", "start_fraction": 0.0}},
    "pcb_single_step": {"regularizer": {"name": "pcb", "start_fraction": 0.0}},
    "dsn": {"head": {"name": "dsn", "steps": 3}},
}
SLOW_STARTERS = {"cosine"}
MMDET_FAMILIES = ("eqlv2", "seesaw", "group_softmax", "pcb_ce")

#: stage-2 method -> stage2 block (+ run overrides)
STAGE2_METHODS: dict[str, dict] = {
    "disalign": {"stage2": {"name": "disalign"}},
    "simcal": {"stage2": {"name": "simcal"}, "sampler": {"name": "bilevel", "classes_per_batch": 2, "episodes": 4}},
    "bags": {"stage2": {"name": "bags", "groups": [2, 5]}},
    "crt": {"stage2": {"name": "crt"}, "sampler": {"name": "class_aware"}},
    "lws": {"stage2": {"name": "lws"}},
    "tau_norm": {"stage2": {"name": "tau_norm", "tau": 1.0}},
    "ncm": {"stage2": {"name": "ncm"}},
    "finetune_tail": {"stage2": {"name": "finetune_tail", "trainable": "fc_cls"}},
}
MMDET_STAGE2 = ("disalign", "tau_norm", "ncm")


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return make_tiny_lvis(tmp_path_factory.mktemp("tiny_lvis_methods"))


def family_run(framework: str, family: str, schedule: dict | None = None) -> dict:
    return tiny_run(id=f"tiny-{framework}-{family}-00000000", framework=framework, schedule={**TWO_ITERS, **(schedule or {})},
                    **STAGE1_FAMILIES.get(family, {}))


def check_outputs(out_dir, *, expect_detections: bool = True) -> list[dict]:
    dets = json.loads((out_dir / "detections.json").read_text())
    if expect_detections:
        assert dets, "no detections"
    for d in dets:
        assert d["category_id"] in CATEGORY_IDS and 1e-4 <= d["score"] <= 1.0 + 1e-6 and len(d["bbox"]) == 4
        assert np.isfinite(d["score"])
    stats = np.load(out_dir / "proposal_stats.npz")
    assert np.isfinite(stats["cm_sum"]).all()
    np.testing.assert_allclose(stats["cm_sum"].sum(axis=1), stats["cm_count"], rtol=1e-6)
    return dets


def test_families_cover_every_registered_head() -> None:
    from ltbench.methods import head_for_run
    from ltbench.methods.box_head import BOX_HEADS

    reached = set()
    for family in STAGE1_FAMILIES:
        name, params = head_for_run(family_run("torchvision", family))
        reached.add(name)
        if "base" in params:
            reached.add(params["base"])
    # "pcb" is a registered shorthand for "iterative" with the PCB regulariser (the same class with
    # defaults); head_for_run always returns "iterative", which the pcb_* families reach.
    missing = set(BOX_HEADS.names()) - reached - {"pcb"}
    assert not missing, f"registered heads without an adapter test family: {sorted(missing)}"


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(STAGE1_FAMILIES))
def test_torchvision_stage1_family_trains_and_predicts(family, tiny_data, tmp_path) -> None:
    run = family_run("torchvision", family)
    adapter = get_adapter("torchvision")
    adapter.train(run, tmp_path / "w", tiny_data)
    adapter.predict(run, {"id": "plain", "name": "plain"}, tmp_path / "w", tiny_data, split="val", out_dir=tmp_path / "o")
    # A cosine classifier (scale 20) starts with the background at p ~ 1: after two iterations every
    # foreground score is legitimately below the 1e-4 threshold.
    check_outputs(tmp_path / "o", expect_detections=family not in SLOW_STARTERS)


@pytest.mark.slow
@pytest.mark.mmdet
@needs_mmdet
@pytest.mark.parametrize("family", MMDET_FAMILIES)
def test_mmdet_stage1_family_trains_and_predicts(family, tiny_data, tmp_path) -> None:
    run = family_run("mmdet", family)
    adapter = get_adapter("mmdet")
    adapter.train(run, tmp_path / "w", tiny_data)
    adapter.predict(run, {"id": "plain", "name": "plain"}, tmp_path / "w", tiny_data, split="val", out_dir=tmp_path / "o")
    check_outputs(tmp_path / "o")


@pytest.fixture(scope="module")
def torchvision_stage1(tmp_path_factory, tiny_data):
    workdir = tmp_path_factory.mktemp("tv_stage1")
    run = family_run("torchvision", "softmax", schedule={"iterations": 3, "checkpoint_period": 3, "warmup_iters": 1, "steps": [3]})
    torch.set_num_threads(1)
    get_adapter("torchvision").train(run, workdir, tiny_data)
    return run, workdir


@pytest.fixture(scope="module")
def mmdet_stage1(tmp_path_factory, tiny_data):
    if not MMDET_OK:
        pytest.skip(MMDET_REASON)
    workdir = tmp_path_factory.mktemp("mm_stage1")
    run = family_run("mmdet", "softmax")
    torch.set_num_threads(1)
    get_adapter("mmdet").train(run, workdir, tiny_data)
    return run, workdir


def stage2_run(framework: str, method: str, stage1_run: dict) -> dict:
    overrides = dict(STAGE2_METHODS[method])
    return tiny_run(id=f"tiny-{framework}-{method}-00000000", framework=framework, schedule=TWO_ITERS,
                    stage1=stage1_run["id"], **overrides)


def _frozen_outside_head_unchanged(stage1_state: dict, stage2_state: dict, head_prefix: str) -> None:
    """Stage 2 trains only the new head: every stage-1 tensor outside the box head is unchanged."""
    checked = 0
    for key, value in stage1_state.items():
        if key.startswith(head_prefix) or key.endswith("num_batches_tracked"):
            continue
        assert torch.equal(value, stage2_state[key]), key
        checked += 1
    assert checked > 10


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(STAGE2_METHODS))
def test_torchvision_stage2_method(method, torchvision_stage1, tiny_data, tmp_path) -> None:
    stage1_run, stage1_dir = torchvision_stage1
    run = stage2_run("torchvision", method, stage1_run)
    adapter = get_adapter("torchvision")
    final = adapter.train(run, tmp_path / "w", tiny_data, stage1_workdir=stage1_dir)
    s1 = torch.load(stage1_dir / "model_final.pth", weights_only=False)["model"]
    s2 = torch.load(final, weights_only=False)["model"]
    _frozen_outside_head_unchanged(s1, s2, "roi_heads.box_head.")
    adapter.predict(run, {"id": "plain", "name": "plain"}, tmp_path / "w", tiny_data, split="val", out_dir=tmp_path / "o")
    check_outputs(tmp_path / "o")


@pytest.mark.slow
def test_torchvision_simcal_dual_head_views(torchvision_stage1, tiny_data, tmp_path) -> None:
    stage1_run, stage1_dir = torchvision_stage1
    run = stage2_run("torchvision", "simcal", stage1_run)
    adapter = get_adapter("torchvision")
    adapter.train(run, tmp_path / "w", tiny_data, stage1_workdir=stage1_dir)
    scores = {}
    for combiner in ("replace", "average"):
        view = {"id": f"dual-t2-{combiner}", "name": "dual_head", "threshold": 2, "combiner": combiner}
        adapter.predict(run, view, tmp_path / "w", tiny_data, split="val", out_dir=tmp_path / combiner)
        scores[combiner] = [d["score"] for d in check_outputs(tmp_path / combiner)]
    assert scores["replace"] != scores["average"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "view",
    [
        {"id": "cm-val", "name": "cm_calibration", "source": "val"},
        {"id": "cm-train", "name": "cm_calibration", "source": "train"},
        {"id": "ms", "name": "ms_calibration"},
        {"id": "norcal-g0.5", "name": "norcal", "gamma": 0.5},
    ],
    ids=lambda v: v["id"],
)
def test_torchvision_posthoc_views_change_scores(view, torchvision_stage1, tiny_data, tmp_path) -> None:
    run, workdir = torchvision_stage1
    adapter = get_adapter("torchvision")
    adapter.predict(run, {"id": "plain", "name": "plain"}, workdir, tiny_data, split="val", out_dir=tmp_path / "plain")
    adapter.predict(run, view, workdir, tiny_data, split="val", out_dir=tmp_path / "view")
    plain = check_outputs(tmp_path / "plain")
    viewed = check_outputs(tmp_path / "view")
    assert sorted(d["score"] for d in plain) != sorted(d["score"] for d in viewed)


@pytest.mark.slow
def test_torchvision_recurrent_step_views(tiny_data, tmp_path) -> None:
    run = family_run("torchvision", "pcb_ce")
    adapter = get_adapter("torchvision")
    adapter.train(run, tmp_path / "w", tiny_data)
    out = {}
    for step in (1, 3):
        adapter.predict(run, {"id": f"step{step}", "name": "recurrent_step", "step": step}, tmp_path / "w", tiny_data,
                        split="val", out_dir=tmp_path / f"s{step}")
        out[step] = check_outputs(tmp_path / f"s{step}")
    adapter.predict(run, {"id": "plain", "name": "plain"}, tmp_path / "w", tiny_data, split="val", out_dir=tmp_path / "plain")
    # The plain view of a 3-step head is its last step.
    assert json.loads((tmp_path / "plain" / "detections.json").read_text()) == out[3]
    assert [d["score"] for d in out[1]] != [d["score"] for d in out[3]]


@pytest.mark.slow
@pytest.mark.mmdet
@needs_mmdet
@pytest.mark.parametrize("method", MMDET_STAGE2)
def test_mmdet_stage2_method(method, mmdet_stage1, tiny_data, tmp_path) -> None:
    stage1_run, stage1_dir = mmdet_stage1
    run = stage2_run("mmdet", method, stage1_run)
    adapter = get_adapter("mmdet")
    final = adapter.train(run, tmp_path / "w", tiny_data, stage1_workdir=stage1_dir)
    s1 = torch.load(stage1_dir / "iter_2.pth", weights_only=False)["state_dict"]
    s2 = torch.load(final, weights_only=False)["state_dict"]
    _frozen_outside_head_unchanged(s1, s2, "roi_head.bbox_head.box_head.")
    view = {"id": "dual-t2-average", "name": "dual_head", "threshold": 2, "combiner": "average"}
    adapter.predict(run, view, tmp_path / "w", tiny_data, split="val", out_dir=tmp_path / "o")
    check_outputs(tmp_path / "o")


@pytest.mark.slow
@pytest.mark.mmdet
@needs_mmdet
def test_mmdet_posthoc_view_and_recurrent_step(mmdet_stage1, tiny_data, tmp_path) -> None:
    run, workdir = mmdet_stage1
    adapter = get_adapter("mmdet")
    adapter.predict(run, {"id": "plain", "name": "plain"}, workdir, tiny_data, split="val", out_dir=tmp_path / "plain")
    adapter.predict(run, {"id": "cm-val", "name": "cm_calibration", "source": "val"}, workdir, tiny_data, split="val",
                    out_dir=tmp_path / "cm")
    plain, cm = check_outputs(tmp_path / "plain"), check_outputs(tmp_path / "cm")
    assert sorted(d["score"] for d in plain) != sorted(d["score"] for d in cm)
