"""Recovery, end to end on a copy of the workflow (real steps, store, collect and render; fake adapter, data and
evaluation: tests/support/fake_ltbench.py): a damaged record is made again, a clean rebuild works, a forced retrain
really retrains."""

from __future__ import annotations

import json
import subprocess

import pytest

from ltbench import paths
from support.workflow import run_workflow, workflow_copy

TARGET = "tables/pcb_table5.md"  # 3 runs, 3 views: the smallest reproduced table


def _ok(proc):
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc.stdout + proc.stderr


def _cells(root) -> str:
    """The table's rows (everything above its summary)."""
    return (root / TARGET).read_text().split("**Summary:**")[0]


@pytest.fixture
def campaign(tmp_path):
    root = workflow_copy(tmp_path / "wf")
    _ok(run_workflow(root, TARGET))
    records = sorted((root / "results" / "records").glob("*/plain.json"))
    assert len(records) == 3 and "pending" not in _cells(root)
    return root, records


def _nothing_to_do(root) -> bool:
    return "Nothing to be done" in _ok(run_workflow(root, TARGET))


@pytest.mark.parametrize("damage", ["deleted", "truncated"])
def test_a_deleted_or_corrupt_record_is_made_again_by_the_next_run(campaign, damage):
    """Reproduction (issue 15, 2): after deleting or truncating results/records/<run>/plain.json, rerunning the
    table exited 0 with the table unchanged or showing "pending", and the next run said "Nothing to be done".
    Now the record's job runs again (and collect and render after it), the table is whole, and then the
    workflow is up to date."""
    root, records = campaign
    record = records[0]
    if damage == "deleted":
        record.unlink()
    else:
        record.write_bytes(record.read_bytes()[:100])
    log = _ok(run_workflow(root, TARGET))
    relative = record.relative_to(root)
    assert f"the record {relative} is {'missing' if damage == 'deleted' else 'corrupt'}" in log
    assert "localrule record:" in log and "localrule render_table:" in log
    assert json.loads(record.read_text())["run_id"] == record.parent.name
    assert "pending" not in _cells(root) and "corrupt" not in _cells(root)
    assert _nothing_to_do(root)


def test_collect_fails_naming_a_corrupt_record_that_was_not_made_again(campaign):
    """The safety net: a corrupt record that is not made again (here --allowed-rules keeps its record job from
    running) fails the collect step, which names the file, instead of rendering around it."""
    root, records = campaign
    from ltbench.store.records import read_record

    record = records[1]
    record.write_text("{")
    proc = run_workflow(root, "--allowed-rules", "collect", "render_table", "--", TARGET)
    assert proc.returncode != 0
    log = (root / "results" / "logs" / "collect" / "pcb_table5.log").read_text()
    assert "corrupt record" in log and str(record.relative_to(root)) in log
    assert read_record(record)[1] is not None  # not silently replaced


def test_clean_results_keeps_tracked_files_and_a_clean_rebuild_works(campaign):
    """Reproduction (issue 15, 3): `make clean-results` deleted the tracked tables/README.md and left
    results/tables/*.parquet; the next run rendered every cell "pending" and exited 0. Now it removes generated
    files only, and the next run makes the records and the table again."""
    root, _ = campaign
    tracked = subprocess.run(["git", "ls-files", "results", "tables"], cwd=paths.REPO_ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    assert "tables/README.md" in tracked
    for name in tracked:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes((paths.REPO_ROOT / name).read_bytes())
    subprocess.run(["make", "-s", "clean-results"], cwd=root, check=True, capture_output=True, text=True)
    assert [name for name in tracked if not (root / name).is_file()] == []
    assert not list((root / "results").glob("records/*/*.json"))
    assert not (root / "results" / "tables").exists() and not (root / TARGET).exists()
    assert (root / "work").is_dir() and (root / "results" / "metrics").is_dir()  # trained models and evaluations stay
    log = _ok(run_workflow(root, TARGET))
    assert "localrule train:" not in log and "localrule record:" in log
    assert "pending" not in _cells(root)
    assert len(list((root / "results").glob("records/*/*.json"))) == 3
    assert _nothing_to_do(root)


def test_a_forced_retrain_really_retrains_and_the_old_work_directory_goes_once_it_finished(campaign):
    """Reproduction (issue 15, 1): `snakemake --forcerun results/runs/<run>/train.done -- <table>` finished at once
    and work/<run>/model_final.pth kept its old time: training returned early because done.json existed, and
    nothing said so. Now the job trains from scratch in a fresh work directory, says so in its log, the old
    directory is kept aside until the new training finished and then removed, and the run's views follow."""
    root, records = campaign
    run_id = records[0].parent.name
    work = root / "work" / run_id
    before = (work / "model_final.pth").read_text()
    recorded = json.loads(records[0].read_text())["provenance"]["recorded"]
    force = ["--forcerun", f"results/runs/{run_id}/train.done", "--", TARGET]
    assert "rule train:" in _ok(run_workflow(root, "-n", *force))
    assert not (root / "results" / "runs" / run_id / "train.retrain.json").exists()  # a dry run asks nothing
    log = _ok(run_workflow(root, *force))
    assert "localrule train:" in log or "rule train:" in log
    train_log = (root / "results" / "logs" / run_id / "train.log").read_text()
    assert "holds a finished training" in train_log and "training it again from scratch" in train_log
    assert "moved it to" in train_log and "removed" in train_log
    assert (work / "model_final.pth").read_text() != before
    assert (work / "log.txt").read_text() == "started from scratch\n"  # a fresh directory, not the old one's log
    assert not list(work.parent.glob(f"{run_id}.previous-*"))
    assert not (root / "results" / "runs" / run_id / "train.job.json").exists()
    assert json.loads(records[0].read_text())["provenance"]["recorded"] != recorded  # predicted and recorded again
    assert _nothing_to_do(root)


def test_a_failed_retrain_keeps_the_old_directory_and_the_same_command_again_resumes_the_new_one(campaign):
    """A forced retrain that fails leaves the old finished directory aside (rename it back to undo) and the new
    unfinished one in place; the same command again resumes the new one exactly, it does not start over."""
    root, records = campaign
    run_id = records[0].parent.name
    work = root / "work" / run_id
    before = (work / "model_final.pth").read_text()
    force = ["--forcerun", f"results/runs/{run_id}/train.done", "--", TARGET]
    proc = run_workflow(root, *force, env={"FAKE_TRAIN_FAIL": "1"})
    assert proc.returncode != 0
    (previous,) = work.parent.glob(f"{run_id}.previous-*")
    assert (previous / "model_final.pth").read_text() == before and (previous / "done.json").is_file()
    assert not (work / "done.json").exists() and (work / "last_checkpoint").is_file()
    _ok(run_workflow(root, *force))
    train_log = (root / "results" / "logs" / run_id / "train.log").read_text()
    assert "holds an unfinished training: resuming it from model_0000001.pth" in train_log
    lines = (work / "log.txt").read_text().splitlines()  # (the failing attempt may have been retried: resumed too)
    assert lines[0] == "started from scratch" and set(lines[1:]) == {"resumed from model_0000001.pth"}
    assert (work / "model_final.pth").read_text() != before and not previous.exists()
    assert "pending" not in _cells(root) and "failed" not in _cells(root)


def test_a_training_job_snakemake_reruns_unasked_marks_the_finished_training(campaign):
    """Not every rerun of a training job is a retrain: here its marker is gone and a forced prediction needs it
    (as after a killed Snakemake whose training finished anyway, or a deleted marker). The job writes the marker
    from the finished work directory, says so, and trains nothing."""
    root, records = campaign
    run_id = records[0].parent.name
    work = root / "work" / run_id
    before = (work / "model_final.pth").read_text()
    (root / "results" / "runs" / run_id / "train.done").unlink()
    _ok(run_workflow(root, "--forcerun", f"results/predictions/{run_id}/plain/detections.json", "--", TARGET))
    train_log = (root / "results" / "logs" / run_id / "train.log").read_text()
    assert "holds a finished training" in train_log and "nothing to train, writing its marker" in train_log
    assert (work / "model_final.pth").read_text() == before and (work / "log.txt").read_text() == "started from scratch\n"
    assert (root / "results" / "runs" / run_id / "train.done").is_file()
