"""Training work directories: one trainer at a time (the lock), and what a training job does with a finished one
(ltbench.workflow.workdir). `ltbench train` and `ltbench step train` run for real, with the fake adapter of
tests/support/fake_ltbench.py."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ltbench import paths
from ltbench.plan import build_plan
from ltbench.workflow import workdir as wd

FAKE = Path(__file__).resolve().parents[1] / "support" / "fake_ltbench.py"


@pytest.fixture(scope="module")
def run_config():
    plan = build_plan(targets=["tables/pcb_table5.md"], scale="smoke")
    return next(iter(plan.runs.values())).config


def _env(**extra):
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(paths.REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
            **extra}


def _ltbench(*argv, cwd, env=None, **kwargs):
    return subprocess.run([sys.executable, str(FAKE), *argv], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env=_env(**(env or {})), **kwargs)


def _train_argv(tmp_path, run_config):
    config = tmp_path / "run.json"
    config.write_text(json.dumps(run_config))
    return ["train", "--run-config", str(config), "--workdir", str(tmp_path / "work" / run_config["id"])]


def _step_argv(tmp_path, run_config):  # the train rule's command line
    run_id = run_config["id"]
    return ["step", "train", "--run", run_id, "--config-json", json.dumps(run_config), "--workdir", f"work/{run_id}",
            "--out-run", f"results/runs/{run_id}/run.json", "--out-done", f"results/runs/{run_id}/train.done",
            "--log", f"results/logs/{run_id}/train.log", "--results-dir", "results"]


def _step(tmp_path, run_config) -> tuple[int, str]:
    """`ltbench step train` as the train rule runs it (its output to its log); (exit status, log)."""
    log = tmp_path / "results" / "logs" / run_config["id"] / "train.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as handle:
        code = subprocess.run([sys.executable, str(FAKE), *_step_argv(tmp_path, run_config)], cwd=tmp_path,
                              stdout=handle, stderr=subprocess.STDOUT, timeout=120, env=_env()).returncode
    return code, log.read_text()


def _wait_for_holder(lock_file: Path, timeout: float = 60) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        holder = wd.read_holder(lock_file) if lock_file.is_file() else None
        if holder:
            return holder
        time.sleep(0.1)
    raise AssertionError(f"nobody took {lock_file}")


def test_a_second_trainer_fails_at_once_naming_the_directory_and_the_holder(tmp_path, run_config):
    """Reproduction (issue 15, 5): `ltbench train` took no lock, so a second trainer (e.g. next to the orphan a killed
    Snakemake left running) trained in the same work directory. Now the first holds work/<run>/train.lock while
    it runs and the second fails at once with a clear error naming the directory and the holder's pid and host."""
    argv = _train_argv(tmp_path, run_config)
    workdir = Path(argv[-1])
    first = subprocess.Popen([sys.executable, str(FAKE), *argv], cwd=tmp_path, env=_env(FAKE_TRAIN_SLEEP="60"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        holder = _wait_for_holder(workdir / wd.LOCK_FILE)
        assert holder["pid"] == first.pid and holder["host"] == socket.gethostname()
        started = time.time()
        second = _ltbench(*argv, cwd=tmp_path)
        assert time.time() - started < 30
        assert second.returncode != 0
        assert f"another `ltbench train` is training in {workdir}" in second.stderr
        assert f"pid {first.pid} on host {socket.gethostname()}" in second.stderr
        assert f"kill {first.pid}" in second.stderr and "Traceback" not in second.stderr
        assert (workdir / "log.txt").read_text() == "started from scratch\n"  # the second one never trained
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    # the kernel dropped the killed holder's lock: the next trainer takes it and resumes
    third = _ltbench(*argv, cwd=tmp_path)
    assert third.returncode == 0, third.stderr
    assert (workdir / "log.txt").read_text().splitlines() == ["started from scratch", "resumed from model_0000001.pth"]
    assert wd.read_holder(workdir / wd.LOCK_FILE)["pid"] != first.pid


def test_the_lock_is_exclusive_between_open_files_and_released_by_release(tmp_path):
    lock = wd.WorkdirLock(tmp_path / "w").acquire()
    with pytest.raises(wd.WorkdirLocked, match=f"pid {os.getpid()} on host"):
        wd.WorkdirLock(tmp_path / "w").acquire()
    lock.release()
    with wd.WorkdirLock(tmp_path / "w") as again:
        assert again.held


@pytest.mark.parametrize(("env", "holds"), [
    ({}, True),  # alone, or the launcher of its ranks
    ({"LTBENCH_LAUNCHED": "1", "RANK": "0", "TORCHELASTIC_RUN_ID": "x"}, False),  # a rank of our relaunch
    ({"TORCHELASTIC_RUN_ID": "x", "RANK": "0"}, True),  # torchrun by hand: rank 0
    ({"TORCHELASTIC_RUN_ID": "x", "RANK": "3"}, False),
    ({"SLURM_NTASKS": "4", "SLURM_STEP_ID": "0", "SLURM_PROCID": "0"}, True),  # srun by hand: task 0
    ({"SLURM_NTASKS": "4", "SLURM_STEP_ID": "0", "SLURM_PROCID": "2"}, False),
])
def test_who_holds_the_lock(env, holds):
    assert wd.holds_lock(env) is holds


def test_ltbench_train_on_a_finished_directory_says_so_and_retrain_starts_over(tmp_path, run_config):
    argv = _train_argv(tmp_path, run_config)
    workdir = Path(argv[-1])
    assert _ltbench(*argv, cwd=tmp_path).returncode == 0
    first = (workdir / "model_final.pth").read_text()
    again = _ltbench(*argv, cwd=tmp_path)
    assert again.returncode == 0 and "holds a finished training (done.json): nothing to train" in again.stderr
    assert (workdir / "model_final.pth").read_text() == first
    retrain = _ltbench(*argv, "--retrain", cwd=tmp_path)
    assert retrain.returncode == 0, retrain.stderr
    assert "moved it to" in retrain.stderr and "removed" in retrain.stderr
    assert (workdir / "model_final.pth").read_text() != first and wd.previous_dirs(workdir) == []


def _request(tmp_path, run_id, *, age: float = 0.0) -> Path:
    """The retrain request the train rule's input function leaves when the user forces the job."""
    request = tmp_path / "results" / "runs" / run_id / wd.REQUEST_FILE
    request.write_text(json.dumps({"forced_by": f"--forcerun results/runs/{run_id}/train.done"}))
    if age:
        then = time.time() - age
        os.utime(request, (then, then))
    return request


def test_a_finished_run_is_marked_unless_its_job_was_forced_then_it_is_trained_again(tmp_path, run_config):
    """A training job that Snakemake reruns without being asked to (--rerun-incomplete after a killed Snakemake
    whose job finished anyway, a deleted marker) marks the finished training; a forced one trains it again from
    scratch, and the old directory goes once the new training finished."""
    run_id = run_config["id"]
    code, log = _step(tmp_path, run_config)
    assert code == 0 and f"training {run_id} from scratch" in log, log
    runs, workdir = tmp_path / "results" / "runs" / run_id, tmp_path / "work" / run_id
    model = (workdir / "model_final.pth").read_text()
    (runs / "train.done").unlink()  # what Snakemake does before it runs the job again
    code, log = _step(tmp_path, run_config)
    assert code == 0 and "holds a finished training" in log and "nothing to train, writing its marker" in log, log
    assert f"snakemake --forcerun results/runs/{run_id}/train.done" in log
    assert (workdir / "model_final.pth").read_text() == model and (runs / "train.done").is_file()
    (runs / "train.done").unlink()
    request = _request(tmp_path, run_id)
    code, log = _step(tmp_path, run_config)
    assert code == 0 and f"was forced (--forcerun results/runs/{run_id}/train.done)" in log, log
    assert "training it again from scratch" in log and "moved it to" in log and "removed" in log
    assert (workdir / "model_final.pth").read_text() != model and wd.previous_dirs(workdir) == []
    assert (workdir / "log.txt").read_text() == "started from scratch\n" and not request.exists()


def test_a_forced_retrain_that_finished_but_lost_its_marker_is_not_started_over(tmp_path, run_config):
    """The request of a retrain that finished (its done.json is newer) and stopped before its marker is spent."""
    run_id = run_config["id"]
    assert _step(tmp_path, run_config)[0] == 0
    runs, workdir = tmp_path / "results" / "runs" / run_id, tmp_path / "work" / run_id
    model = (workdir / "model_final.pth").read_text()
    (runs / "train.done").unlink()
    _request(tmp_path, run_id, age=60)  # older than done.json
    code, log = _step(tmp_path, run_config)
    assert code == 0 and "nothing to train" in log, log
    assert (workdir / "model_final.pth").read_text() == model


def test_a_forced_retrain_blocked_by_the_lock_fails_naming_the_holder_and_retrains_next_time(tmp_path, run_config):
    """A forced job that could not start (another trainer holds the work directory) fails with a note naming the
    holder; its request stays, so the next job still trains again instead of marking the old model."""
    run_id = run_config["id"]
    assert _step(tmp_path, run_config)[0] == 0
    runs, workdir = tmp_path / "results" / "runs" / run_id, tmp_path / "work" / run_id
    model = (workdir / "model_final.pth").read_text()
    (runs / "train.done").unlink()
    request = _request(tmp_path, run_id)
    with wd.WorkdirLock(workdir):
        code, log = _step(tmp_path, run_config)
    assert code != 0 and request.is_file(), log
    failure = json.loads((tmp_path / "results" / "failures" / run_id / "train.json").read_text())
    assert "another `ltbench train` is training in" in failure["reason"] and f"pid {os.getpid()}" in failure["reason"]
    assert (workdir / "model_final.pth").read_text() == model and wd.previous_dirs(workdir) == []
    code, log = _step(tmp_path, run_config)
    assert code == 0 and "training it again from scratch" in log, log
    assert (workdir / "model_final.pth").read_text() != model


def test_a_run_whose_stage1_was_trained_after_it_is_trained_again(tmp_path, run_config):
    run_id = run_config["id"]
    assert _step(tmp_path, run_config)[0] == 0
    runs, workdir = tmp_path / "results" / "runs" / run_id, tmp_path / "work" / run_id
    stage1 = tmp_path / "work" / "stage1-run"
    stage1.mkdir()
    (stage1 / "done.json").write_text("{}")  # finished after this run's training
    (runs / "train.done").unlink()
    decision = wd.job_decision(run_id, workdir, runs / wd.REQUEST_FILE, (stage1, None))
    assert decision.action == "retrain" and "trained again after it" in decision.message
    past = (workdir / "done.json").stat().st_mtime - 60
    os.utime(stage1 / "done.json", (past, past))
    assert wd.job_decision(run_id, workdir, runs / wd.REQUEST_FILE, (stage1, None)).action == "mark"


@pytest.mark.parametrize(("settings", "forced"), [
    ({}, None),
    ({"forceall": True}, "--forceall"),
    ({"forcerun": {"train"}}, "--forcerun train"),
    ({"forcerun": {"./results/runs/r-1/train.done"}}, "--forcerun ./results/runs/r-1/train.done"),
    ({"forcerun": {"results/runs/r-2/train.done"}}, None),
    ({"forcerun": {"predict"}}, None),
    ({"forcetargets": True, "targets": {"results/runs/r-1/train.done"}}, "--force results/runs/r-1/train.done"),
    ({"forcetargets": True, "targets": {"tables/pcb_table5.md"}}, None),
    ({"forceall": True, "allowed_rules": {"record"}}, None),
])
def test_which_options_force_a_training_job(settings, forced):
    from types import SimpleNamespace

    assert wd.forced_by(SimpleNamespace(**settings), "train", "results/runs/r-1/train.done") == forced
