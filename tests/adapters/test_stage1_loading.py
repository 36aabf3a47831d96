"""A stage-2 run starts from its stage-1 model (adapters.stage1): for every stage-1/stage-2 pair the specs plan
at the embedded scale, the stage-1 model is rebuilt from its chain of runs, its checkpoint loads by name,
the stage-2 head is built around it with what it re-initialises named, and prediction rebuilds the same model.

The BAGS Table 5 (3)/(4) fine-tunes start from a BAGS stage-2 model (C + 1 + groups logits): with
``keep_head: bags`` that head is rebuilt and loaded whole (the run that failed with "size mismatch for
roi_heads.box_head.cls_score.weight"); without it the classifier of the other layout is re-initialised by
name and logged."""

from __future__ import annotations

import copy
import json

import pytest

torch = pytest.importorskip("torch")

from adapters import get_adapter, stage1 as s1  # noqa: E402
from adapters.mmdet.registration import mmdet_available  # noqa: E402
from adapters.records import load_lvis_split  # noqa: E402
from ltbench.errors import LtbenchError  # noqa: E402
from ltbench.plan import build_plan  # noqa: E402
from support.runs import BASE_RUN, tiny_run  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

_PLAN = build_plan(scale="smoke")
_SKIP = ("id", "stage1", "seed", "schedule", "model", "scale", "fp16")


def _signature(config: dict) -> str:
    """What makes a stage's model: everything but ids, seed, schedule and the scale's model size."""
    out = {k: v for k, v in config.items() if k not in _SKIP}
    if isinstance(out.get("stage2"), dict):
        out["stage2"] = {k: v for k, v in out["stage2"].items() if k not in ("schedule", "sampler")}
    return json.dumps(out, sort_keys=True)


def _chain(run_id: str) -> list[dict]:
    chain = [_PLAN.runs[run_id].config]
    while chain[0].get("stage1"):
        chain.insert(0, _PLAN.runs[chain[0]["stage1"]].config)
    return chain


def planned_pairs() -> dict[str, list[dict]]:
    """One chain (root first, the stage-2 run last) per distinct stage-1/stage-2 pair of the embedded plan."""
    pairs: dict[str, list[dict]] = {}
    for run in _PLAN.runs.values():
        if run.stage1:
            chain = _chain(run.id)
            pairs.setdefault(" <- ".join(_signature(c) for c in reversed(chain)), chain)
    return {chain[-1]["id"]: chain for chain in pairs.values()}


PAIRS = planned_pairs()


def tiny(config: dict) -> dict:
    """The plan's config with the test's tiny model size (the tiny data's 4 classes come from the split)."""
    config = copy.deepcopy(config)
    config["model"] = dict(BASE_RUN["model"])
    config["pretrain"] = "none"  # nothing to fetch: the weights come from the stage-1 model
    return config


def build(framework: str, config: dict, chain: list[dict], state: dict | None, split, data, tmp_path, report_dir=None):
    """(model, its state dict) of one stage through the adapter's own code path."""
    adapter = get_adapter(framework)
    if framework == "torchvision":
        from adapters.torchvision.model import build_model

        if not chain:
            model = build_model(config, split)
        else:
            model = adapter._stage2_model(config, split, chain, None if state is None else {"model": state}, report_dir=report_dir)
        return model, model.state_dict()
    checkpoint = None
    if state is not None:
        checkpoint = tmp_path / f"stage1_{len(chain)}.pth"
        torch.save({"state_dict": state}, checkpoint)
    model, _ = adapter._build_model(config, split, data, stage1=(chain, checkpoint) if chain else None, report_dir=report_dir)
    return model, model.state_dict()


def test_the_plan_has_pairs_of_both_frameworks_and_a_three_stage_chain() -> None:
    frameworks = {chain[-1]["framework"] for chain in PAIRS.values()}
    assert frameworks == {"torchvision", "mmdet"}
    assert any(len(chain) == 3 for chain in PAIRS.values())  # BAGS Table 5 (3)/(4)
    assert {chain[-1]["stage2"]["name"] for chain in PAIRS.values()} >= {"bags", "disalign", "simcal", "finetune", "ncm", "tau_norm"}


@pytest.mark.parametrize("run_id", sorted(PAIRS))
def test_every_planned_stage1_stage2_pair_loads_its_stage1_model(run_id, tiny_data, tmp_path) -> None:
    chain = [tiny(c) for c in PAIRS[run_id]]
    framework = chain[-1]["framework"]
    if framework == "mmdet":
        ok, reason = mmdet_available()
        if not ok:
            pytest.skip(reason)
    split = load_lvis_split(tiny_data.train, tiny_data.image_root)
    # the stage-1 model as its own training made it: the chain's first run, then each stage-2 run on it
    _, state = build(framework, chain[0], [], None, split, tiny_data, tmp_path)
    for i in range(1, len(chain) - 1):
        _, state = build(framework, chain[i], chain[:i], state, split, tiny_data, tmp_path)
    model, stage2_state = build(framework, chain[-1], chain[:-1], state, split, tiny_data, tmp_path, report_dir=tmp_path)
    report = json.loads((tmp_path / s1.REPORT_FILE).read_text())
    # the stage-1 model is rebuilt as it trained: every tensor of its checkpoint loads, nothing is left out
    assert report["loaded"] == len(state) and report["reinitialised"] == [] and report["left_out"] == []
    stage2 = chain[-1]["stage2"]
    if stage2.get("keep_head"):
        assert report["architecture"] == [c["id"] for c in chain[:-1]]
    if stage2["name"] == "bags":  # BAGS' classifier has C + 1 + groups logits: re-initialised, by name
        assert any("cls_score.weight" in n and "->" in n for n in report["stage2_reinitialised"]), report
    if stage2["name"] in ("disalign", "simcal"):  # new calibration parameters around the frozen stage-1 head
        assert report["stage2_new"], report
    # prediction rebuilds the same model from the recorded chain and loads the stage-2 weights strictly
    again, _ = build(framework, chain[-1], chain[:-1], None, split, tiny_data, tmp_path)
    again.load_state_dict(stage2_state)


def _bags_then_finetune(keep_head: str | None) -> list[dict]:
    base = tiny_run(id="tiny-faster-00000000", detector="faster_rcnn", pretrain="none")
    bags = tiny_run(id="tiny-faster-bags-00000000", detector="faster_rcnn", pretrain="none", stage1=base["id"],
                    stage2={"name": "bags", "groups": [2, 5], "trainable": "fc_cls"})
    finetune = {"name": "finetune", "trainable": "head", **({"keep_head": keep_head} if keep_head else {})}
    tune = tiny_run(id="tiny-faster-tune-00000000", detector="faster_rcnn", pretrain="none", stage1=bags["id"], stage2=finetune)
    return [base, bags, tune]


def test_a_stage2_run_not_keeping_the_stage1_head_reinitialises_its_classifier_by_name(tiny_data, tmp_path, capfd) -> None:
    base, bags, tune = _bags_then_finetune(keep_head=None)
    split = load_lvis_split(tiny_data.train, tiny_data.image_root)
    _, state0 = build("torchvision", base, [], None, split, tiny_data, tmp_path)
    _, state1 = build("torchvision", bags, [base], state0, split, tiny_data, tmp_path)
    build("torchvision", tune, [base, bags], state1, split, tiny_data, tmp_path, report_dir=tmp_path)
    report = json.loads((tmp_path / s1.REPORT_FILE).read_text())
    c, k = len(split.category_ids), state1["roi_heads.box_head.cls_score.weight"].shape[0]
    assert k > c + 1  # BAGS: C + 1 logits and one "others" per group
    assert report["architecture"] == [bags["id"]]  # the BAGS run's own detector and first-stage head
    assert sorted(report["reinitialised"]) == [f"roi_heads.box_head.cls_score.bias [{k}] -> [{c + 1}]",
                                               f"roi_heads.box_head.cls_score.weight [{k}, 128] -> [{c + 1}, 128]"]
    assert report["loaded"] == report["tensors"] - 2 and report["left_out"] == []
    assert "re-initialised: roi_heads.box_head.cls_score" in capfd.readouterr().err


def test_keep_head_must_name_the_stage1_runs_method(tiny_data, tmp_path) -> None:
    base, bags, tune = _bags_then_finetune(keep_head="simcal")
    with pytest.raises(LtbenchError, match="keep_head is 'simcal', but the stage-1 run 'tiny-faster-bags-00000000' was trained with"):
        s1.stage1_architecture(tune, [base, bags])
    with pytest.raises(LtbenchError, match="not a stage-2 run"):
        s1.stage1_architecture({**tune, "stage2": {"name": "finetune", "keep_head": "bags"}}, [base])


def test_a_checkpoint_of_another_backbone_is_an_error_not_a_silent_reinitialisation(tiny_data, tmp_path) -> None:
    base, bags, _ = _bags_then_finetune(keep_head=None)
    split = load_lvis_split(tiny_data.train, tiny_data.image_root)
    _, state = build("torchvision", {**base, "model": {**base["model"], "fpn_channels": 16}}, [], None, split, tiny_data, tmp_path)
    with pytest.raises(LtbenchError, match="does not fit this run's model outside the box head: backbone"):
        build("torchvision", bags, [base], state, split, tiny_data, tmp_path)


@pytest.mark.slow
def test_the_three_stage_bags_finetune_trains_and_predicts(tiny_data, tmp_path) -> None:
    """The failing run's chain, trained: plain Faster R-CNN -> BAGS -> fine-tune keeping the BAGS head."""
    adapter = get_adapter("torchvision")
    schedule = {"iterations": 2, "checkpoint_period": 2, "warmup_iters": 1, "steps": [2]}
    previous = None
    for config in _bags_then_finetune(keep_head="bags"):
        config["schedule"].update(schedule)
        adapter.train(config, tmp_path / config["id"], tiny_data, stage1_workdir=previous)
        previous = tmp_path / config["id"]
    chain = json.loads((previous / s1.CHAIN_FILE).read_text())
    assert [c["id"] for c in chain] == ["tiny-faster-00000000", "tiny-faster-bags-00000000"]
    report = json.loads((previous / s1.REPORT_FILE).read_text())
    assert report["reinitialised"] == [] and report["loaded"] == report["tensors"]
    summary = adapter.predict(config, {"id": "plain", "name": "plain"}, previous, tiny_data, split="val", out_dir=tmp_path / "o")
    assert summary["num_detections"] > 0
