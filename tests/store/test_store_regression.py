"""The regression check: [task, metric, expected, tolerance] entries against the store."""

from __future__ import annotations

import pytest

from ltbench.errors import LtbenchError
from ltbench.store.regression import Expected, evaluate_entries, load_expected


def test_shipped_expected_file_loads_and_names_real_rows():
    from ltbench import paths
    from ltbench.store.regression import task_pairs

    expected = load_expected(paths.WORKFLOWS / "regression" / "expected.yaml")
    assert expected.scale == "mini"
    served = task_pairs(expected, scale="mini", framework=None)
    assert all(served[e.task] for e in expected.entries), "every task must be a planned row"


def test_entries_pass_fail_and_missing(tmp_path):
    f = tmp_path / "e.yaml"
    f.write_text(
        "scale: smoke\nentries:\n"
        "  - [pcb/table2/v0.5/softmax, segm.AP, 10.0, 0.5]\n"
        "  - [pcb/table2/v0.5/softmax, bbox.AP, 10.0, 0.5]\n"
        "  - [pcb/table2/v0.5/rfs-12, segm.AP, 10.0, 0.5]\n"
        "  - [pcb/table2/v9/nothing, segm.AP, 10.0, 0.5]\n"
    )
    expected = load_expected(f)
    assert expected.tables() == [("pcb", "2")]
    report = evaluate_entries(expected, {
        "pcb/table2/v0.5/softmax": {"segm.AP": [10.4], "bbox.AP": [9.2, 9.6]},
        "pcb/table2/v0.5/rfs-12": {},
    })
    assert [o.ok for o in report.outcomes] == [True, False, False, False]
    assert report.outcomes[1].measured == pytest.approx(9.4)
    assert [o.note for o in report.outcomes[2:]] == ["no record yet", "no such row in the plan"]
    md = report.markdown()
    assert "1/4 entries within tolerance" in md and "FAIL" in md and not report.ok


@pytest.mark.parametrize(
    "bad",
    ["entries: {}\n", "entries:\n  - [pcb/table2/v0.5/softmax, segm.AP, 1.0]\n",
     "entries:\n  - [pcb/softmax, segm.AP, 1.0, 0.1]\n", "entries:\n  - [pcb/table2/x, segm.AP, 1.0, -1]\n"],
)
def test_bad_expected_files_name_the_entry(tmp_path, bad):
    f = tmp_path / "e.yaml"
    f.write_text(bad)
    with pytest.raises(LtbenchError) as info:
        load_expected(f)
    assert str(f) in str(info.value) and "entries" in str(info.value)


def test_scale_mismatch_is_an_error(tmp_path):
    from ltbench.store.regression import check

    with pytest.raises(LtbenchError, match="scale"):
        check(Expected(tmp_path / "e.yaml", "smoke", None, []), scale="paper", framework=None, results_dir=tmp_path)


def test_derived_entries_take_the_seed_mean_and_a_tolerance_from_the_pooled_spread(tmp_path):
    from ltbench.store.regression import derive_entries, derived_yaml

    values = {"pcb/table2/v1.0/softmax": {"segm.AP": [26.2, 25.0, 27.1], "segm.APr": [2.8, 2.9, 3.0], "train.x": [1.0, 1.0, 1.0]},
              "pcb/table2/v1.0/rfs-12": {"segm.AP": [30.0, 30.0, 30.0], "segm.APr": [10.0, 10.1, 9.9]}}
    derived = derive_entries(values, ["segm.AP", "segm.APr", "pcb/table2/v1.0/softmax:train.x"], k=3.0, floor=1.0)
    entries = {(d.entry.task, d.entry.metric): d.entry for d in derived}
    assert set(entries) == {(t, m) for t in values for m in ("segm.AP", "segm.APr")} | {("pcb/table2/v1.0/softmax", "train.x")}
    ap = entries[("pcb/table2/v1.0/softmax", "segm.AP")]
    # pooled std: sqrt((1.11 + 0) / 2) = 0.744; Softmax keeps its own, larger std (1.05 -> 3 x 1.05 = 3.2), RFS's
    # three equal seeds say little and take the pool's (3 x 0.744 = 2.23 -> 2.3)
    assert ap.expected == pytest.approx(26.1) and ap.tolerance == pytest.approx(3.2)
    assert entries[("pcb/table2/v1.0/rfs-12", "segm.AP")].tolerance == pytest.approx(2.3)
    assert entries[("pcb/table2/v1.0/softmax", "segm.APr")].tolerance == 1.0  # 3 x 0.1 is below the floor
    f = tmp_path / "expected.yaml"
    f.write_text(derived_yaml(derived, scale="mini", framework="torchvision", header="measured here", k=3.0, floor=1.0))
    loaded = load_expected(f)
    assert loaded.scale == "mini" and loaded.framework == "torchvision" and len(loaded.entries) == 5
    assert ("pcb/table2/v1.0/softmax", "segm.AP", 26.1, 3.2) in [(e.task, e.metric, e.expected, e.tolerance) for e in loaded.entries]
    assert "# seeds 26.20, 25.00, 27.10 (std 1.05, pooled 0.74)" in f.read_text()
    with pytest.raises(LtbenchError, match="2 measured value"):
        derive_entries({"t/table2/x": {"segm.AP": [1.0, 2.0]}}, ["segm.AP"])


def test_training_numbers_of_a_record_are_train_metrics():
    from types import SimpleNamespace

    from ltbench.store.regression import row_metrics

    pair = ("run-s0", "plain")
    record = {"train": {"training": {"ranks": 1, "precision": "32-true", "sampler": {"images": 1600, "rare_pct": 21.5}}}}
    store = SimpleNamespace(results={pair: {"segm.AP": 26.2}}, records={pair: record})
    metrics = row_metrics(store, [pair, ("run-s1", "plain")])  # the second seed has no record yet
    assert metrics == {"segm.AP": [26.2], "train.ranks": [1.0], "train.sampler.images": [1600.0], "train.sampler.rare_pct": [21.5]}


def test_measured_values_read_every_seed_of_the_named_rows(monkeypatch):
    """``ltbench results regression-expected`` reads the rows it is asked for, one value per seed of the plan,
    through the same task names as the check (``task_pairs``)."""
    from types import SimpleNamespace

    from ltbench.render import tables
    from ltbench.store.regression import Expected, Entry, measured_values, task_pairs
    from ltbench.workflow import row_pairs

    softmax, pcb = "pcb/table2/v1.0/softmax", "pcb/table2/v1.0/softmax-plus-pcb"
    served = row_pairs("pcb", "2", scale="mini", framework=None, seeds=3)
    pairs = list(served[("v1.0", "softmax")].pairs)
    assert len(pairs) == 3
    store = SimpleNamespace(results={p: {"segm.AP": 20.0 + i} for i, p in enumerate(pairs)},
                            records={pairs[0]: {"train": {"training": {"pcb": {"offlabel_pct": 40.0}}}}})
    monkeypatch.setattr(tables, "read_store", lambda results_dir=None: store)
    values = measured_values([softmax, pcb], scale="mini", framework=None, seeds=3)
    assert values[softmax] == {"segm.AP": [20.0, 21.0, 22.0], "train.pcb.offlabel_pct": [40.0]}
    assert values[pcb] == {}  # planned, nothing measured yet
    one_seed = task_pairs(Expected(None, "mini", None, [Entry(softmax, "segm.AP", 1.0, 1.0)]), scale="mini", framework=None)
    assert one_seed[softmax] == pairs[:1]  # the check's plan: one seed
    with pytest.raises(LtbenchError, match="no such row in the plan: pcb/table2/v1.0/nothing"):
        measured_values(["pcb/table2/v1.0/nothing"], scale="mini", framework=None, seeds=3)


def test_measured_machines_pool_their_seeds_and_the_file_names_each(tmp_path):
    """measured.yaml keeps each machine's seeds (another CPU trains another backbone); the entries come from all of
    them, and a machine measured again replaces its own block only."""
    from ltbench.store.regression import (Machine, derive_entries, derived_yaml, load_measured, measured_yaml, pooled_values,
                                          select_metrics, with_machine)

    task = "pcb/table2/v1.0/softmax"
    a = Machine("box-a", {"cpu_capability": "AVX2"}, {task: {"segm.AP": [26.0, 27.0, 28.0]}})
    b = Machine("box-b", {"cpu_capability": "AVX512"}, {task: {"segm.AP": [24.0, 24.5, 25.0]}})
    f = tmp_path / "measured.yaml"
    f.write_text(measured_yaml([a, b], scale="mini", framework="torchvision", header="two machines"))
    machines = load_measured(f, scale="mini")
    assert [m.label for m in machines] == ["box-a", "box-b"] and machines[1].about == {"cpu_capability": "AVX512"}
    assert pooled_values(machines) == {task: {"segm.AP": [26.0, 27.0, 28.0, 24.0, 24.5, 25.0]}}
    derived = derive_entries(pooled_values(machines), ["segm.AP"], k=3.0, floor=1.0)
    # the spread over both machines (std 1.54), not one machine's seeds (std 1.0 and 0.5)
    assert derived[0].entry.expected == pytest.approx(25.75) and derived[0].entry.tolerance == pytest.approx(4.7)
    text = derived_yaml(derived, scale="mini", framework="torchvision", header="", k=3.0, floor=1.0, machines=machines)
    assert "# box-a 26.00, 27.00, 28.00; box-b 24.00, 24.50, 25.00 (std 1.54" in text
    again = with_machine(machines, Machine("box-a", {}, {task: {"segm.AP": [1.0, 2.0, 3.0]}}))
    assert [m.label for m in again] == ["box-a", "box-b"] and again[0].values[task]["segm.AP"] == [1.0, 2.0, 3.0]
    assert [m.label for m in with_machine(machines, Machine("box-c", {}, {}))] == ["box-a", "box-b", "box-c"]
    values = {task: {"segm.AP": [1.0], "segm.APc": [2.0]}, "pcb/table2/v1.0/rfs-12": {"segm.AP": [3.0], "train.x": [4.0]}}
    assert select_metrics(values, ["segm.AP", f"{task}:train.x"]) == {task: {"segm.AP": [1.0]}, "pcb/table2/v1.0/rfs-12": {"segm.AP": [3.0]}}
    assert load_measured(tmp_path / "absent.yaml") == []
    with pytest.raises(LtbenchError, match="scale"):
        load_measured(f, scale="smoke")
    f.write_text("scale: mini\nmachines:\n  box-a:\n    values:\n      t/table2/x:\n        segm.AP: [1.0, yes]\n")
    with pytest.raises(LtbenchError, match=r"bad values") as err:
        load_measured(f)
    assert "measured.yaml" in str(err.value) and "segm.AP" in str(err.value)


def test_the_shipped_measurements_are_what_the_expected_values_come_from():
    """expected.yaml is derived from measured.yaml: each entry is the mean of every machine's seeds of it."""
    from ltbench import paths
    from ltbench.store.regression import load_measured, pooled_values

    machines = load_measured(paths.WORKFLOWS / "regression" / "measured.yaml", scale="mini")
    assert machines, "workflows/regression/measured.yaml names no machine"
    pooled = pooled_values(machines)
    for entry in load_expected(paths.WORKFLOWS / "regression" / "expected.yaml").entries:
        got = pooled[entry.task][entry.metric]
        assert entry.expected == pytest.approx(sum(got) / len(got), abs=0.01), entry


def test_regression_expected_with_measured_adds_this_machine_and_derives_from_all(tmp_path, monkeypatch):
    """``ltbench results regression-expected --measured F --label L``: this store's seeds (the asked metrics only)
    go into F under L with what identifies the machine, and expected.yaml comes from every machine in F."""
    from ltbench.cli import main
    from ltbench.store import regression
    from ltbench.store.regression import Machine, load_measured, measured_yaml

    task = "pcb/table2/v1.0/softmax"
    measured, out = tmp_path / "measured.yaml", tmp_path / "expected.yaml"
    measured.write_text(measured_yaml([Machine("box-a", {}, {task: {"segm.AP": [26.0, 27.0, 28.0]}})], scale="mini",
                                      framework="torchvision", header=""))
    monkeypatch.setattr(regression, "measured_values",
                        lambda tasks, **kw: {task: {"segm.AP": [24.0, 24.5, 25.0], "segm.APc": [1.0, 1.0, 1.0]}})
    monkeypatch.setattr(regression, "this_machine", lambda scale: {"cpu_capability": "AVX512"})
    args = ["results", "regression-expected", "--scale", "mini", "--framework", "torchvision", "--seeds", "3", "--task", task,
            "--metric", "segm.AP", "--measured", str(measured), "--label", "box-b", "--machine-note", "fresh clone", "--out", str(out)]
    assert main(args) == 0
    machines = load_measured(measured, scale="mini")
    assert [m.label for m in machines] == ["box-a", "box-b"]
    assert machines[1].values == {task: {"segm.AP": [24.0, 24.5, 25.0]}}
    assert machines[1].about == {"cpu_capability": "AVX512", "note": "fresh clone"}
    assert [(e.task, e.metric, e.expected, e.tolerance) for e in load_expected(out).entries] == [(task, "segm.AP", 25.75, 4.7)]
    assert main(args[:-8] + ["--out", str(out)]) == 0  # without --measured: this store's seeds only
    assert [(e.expected, e.tolerance) for e in load_expected(out).entries] == [(24.5, 1.5)]
    assert main(args[:-8] + ["--label", "box-c", "--out", str(out)]) == 2  # --label without --measured


def test_the_report_says_which_machine_measured_against_which_machines():
    from ltbench.store.regression import Machine, Report, machines_line

    here = {"cpu": "Xeon", "cpu_capability": "AVX512", "backbone": {"sha256": "9f48", "held_out_accuracy": 0.853}}
    line = machines_line(here, [Machine("box-a", {"cpu_capability": "AVX2", "backbone": {"held_out_accuracy": 0.765}}, {})])
    assert line == ("Measured on: Xeon, torch CPU capability AVX512, backbone held-out accuracy 0.853. Expected values from "
                    "box-a (AVX2, backbone held-out accuracy 0.765) (workflows/regression/measured.yaml).")
    assert Report(context=line).markdown().startswith(f"# Regression check\n\n{line}\n\n")
    # a machine whose CPU is on record names it: one capability on two CPUs gave two backbones
    line = machines_line(here, [Machine("box-b", {"cpu": "AMD EPYC", "cpu_capability": "AVX512",
                                                  "backbone": {"held_out_accuracy": 0.765}}, {})])
    assert line.endswith("Expected values from box-b (AMD EPYC, AVX512, backbone held-out accuracy 0.765) "
                         "(workflows/regression/measured.yaml).")
