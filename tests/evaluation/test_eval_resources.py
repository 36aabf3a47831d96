"""Paper-scale evaluation resources (ltbench.evaluation.resources) and the per-scale evaluator setting."""

from __future__ import annotations

import pytest
import yaml

from ltbench import paths
from ltbench.errors import LtbenchError
from ltbench.evaluation import resources as res
from ltbench.plan.scales import val_images


@pytest.mark.parametrize("evaluator", res.EVALUATORS)
def test_model_reproduces_the_measurements_it_was_fitted_to(evaluator):
    for images, cpu_s, peak_mb in res.MEASURED[evaluator]:
        assert res.model_cpu_s(images, evaluator) == pytest.approx(cpu_s, rel=0.15)
        assert res.model_peak_mb(images, evaluator) == pytest.approx(peak_mb, rel=0.06)


@pytest.mark.parametrize("evaluator", res.EVALUATORS)
def test_resources_cover_every_measurement_with_the_margins(evaluator):
    for images, cpu_s, peak_mb in res.MEASURED[evaluator]:
        got = res.evaluation_resources(images, evaluator)
        assert got["runtime_min"] * 60 >= cpu_s * res.RUNTIME_MARGIN * 0.85
        assert got["mem_mb"] >= peak_mb * res.MEMORY_MARGIN * 0.95
        assert got["cpus"] == res.CPUS[evaluator]


@pytest.mark.parametrize("evaluator", res.EVALUATORS)
def test_resources_grow_with_the_val_set_and_have_floors(evaluator):
    sizes = [1, 120, 1000, 5000, 10_000, 19_809, 40_000]
    got = [res.evaluation_resources(n, evaluator) for n in sizes]
    assert all(isinstance(v, int) for g in got for v in g.values())
    assert [g["runtime_min"] for g in got] == sorted(g["runtime_min"] for g in got)
    assert [g["mem_mb"] for g in got] == sorted(g["mem_mb"] for g in got)
    assert got[0] == {"runtime_min": res.MIN_RUNTIME_MIN, "mem_mb": res.MIN_MEM_MB, "cpus": res.CPUS[evaluator]}
    assert all(g["mem_mb"] % 1000 == 0 for g in got)


def test_lvis_v1_val_with_the_fast_path_asks_less_than_with_the_lvis_api():
    n = val_images("lvis_v1")
    fast, ref = res.evaluation_resources(n, "fast"), res.evaluation_resources(n, "lvis-api")
    assert fast["runtime_min"] < ref["runtime_min"] and fast["mem_mb"] < ref["mem_mb"]
    assert fast["mem_mb"] >= res.model_peak_mb(n, "fast") * res.MEMORY_MARGIN


@pytest.mark.parametrize("bad", [0, -5, 2.5, "5000", True, None])
def test_bad_image_counts_are_refused(bad):
    with pytest.raises(LtbenchError, match="val images"):
        res.evaluation_resources(bad, "fast")


def test_unknown_evaluator_is_refused_with_a_suggestion():
    with pytest.raises(LtbenchError, match="did you mean 'fast'"):
        res.evaluation_resources(5000, "fats")


def test_evaluator_setting_per_scale_or_for_every_scale():
    per_scale = {"smoke": "lvis-api", "paper": "fast"}
    assert res.evaluator_for_scale(per_scale, "smoke") == "lvis-api"
    assert res.evaluator_for_scale(per_scale, "paper") == "fast"
    assert res.evaluator_for_scale("fast", "smoke") == "fast"
    assert res.evaluator_for_scale("lvis-api", "paper") == "lvis-api"
    with pytest.raises(LtbenchError, match="no entry for scale 'paper'"):
        res.evaluator_for_scale({"smoke": "lvis-api"}, "paper")
    with pytest.raises(LtbenchError, match="unknown evaluator 'coco'"):
        res.evaluator_for_scale({"smoke": "lvis-api", "paper": "coco"}, "paper")
    with pytest.raises(LtbenchError, match="unknown scale"):
        res.evaluator_for_scale("fast", "huge")


def test_shipped_config_keeps_the_lvis_api_at_smoke_scale_and_the_fast_path_at_paper_scale():
    from snakemake.utils import validate

    schema = str(paths.WORKFLOWS / "schemas" / "config.schema.yaml")
    config = yaml.safe_load((paths.WORKFLOWS / "config" / "config.yaml").read_text())
    validate(config, schema)
    assert res.evaluator_for_scale(config["evaluator"], "smoke") == "lvis-api"
    assert res.evaluator_for_scale(config["evaluator"], "paper") == "fast"
    for ok in ("fast", "lvis-api", {"smoke": "fast", "paper": "lvis-api"}):
        validate({**config, "evaluator": ok}, schema)
    from snakemake.exceptions import WorkflowError

    for bad in ("coco", {"paper": "fast"}, {"smoke": "lvis-api", "paper": "fast", "huge": "fast"}):
        with pytest.raises(WorkflowError):
            validate({**config, "evaluator": bad}, schema)


def test_cli_default_stays_the_evaluator_of_record():
    from ltbench.commands.evaluate import command

    option = next(p for p in command.params if p.name == "evaluator")
    assert option.default == "lvis-api"


def test_the_evaluate_rule_is_sized_from_the_val_set_at_paper_scale_and_capped():
    from ltbench import workflow as wf

    v1 = wf.evaluate_resources("paper", {}, num_val_images=19809, evaluator="fast", ap_fixed=False)
    v05 = wf.evaluate_resources("paper", {}, num_val_images=5000, evaluator="fast", ap_fixed=False)
    assert v05["mem_mb"] < v1["mem_mb"] and v1["cpus_per_task"] == 1
    slow = wf.evaluate_resources("paper", {}, num_val_images=19809, evaluator="lvis-api", ap_fixed=False)
    assert slow["runtime"] > v1["runtime"] and slow["mem_mb"] > v1["mem_mb"]
    ap_fixed = wf.evaluate_resources("paper", {}, num_val_images=5000, evaluator="fast", ap_fixed=True)
    assert ap_fixed["runtime"] >= 120 and ap_fixed["mem_mb"] >= 32000
    assert wf.evaluate_resources("paper", {"max_runtime_min": 60}, num_val_images=19809, evaluator="lvis-api",
                                 ap_fixed=True)["runtime"] == 60
    assert wf.evaluate_resources("smoke", {}, num_val_images=120, evaluator="lvis-api", ap_fixed=False) == \
        wf.light_resources("smoke", {}, gpu=False)
