"""Checkpoint-on-signal (adapters.engine.preemption): a signal to the training process -> flag -> checkpoint after
the current iteration -> exit 75; started again, the run resumes and ends with the weights of a run that
was never interrupted. Also checkpoints by wall time (schedule.checkpoint_minutes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adapters.engine import preemption
from ltbench.errors import LtbenchError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_preemption_state():
    """Every test starts and ends with no handler installed and no request recorded."""
    preemption.uninstall()
    preemption.reset()
    yield
    preemption.uninstall()
    preemption.reset()


# --------------------------------------------------------------------------------------------------
# The module alone
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", preemption.SIGNALS)
def test_a_signal_to_the_process_sets_the_flag_and_handlers_are_restored(name):
    signum = getattr(signal, name)
    before = signal.getsignal(signum)
    with preemption.handling() as active:
        assert active and preemption.installed() == tuple(sorted(preemption.SIGNALS, key=lambda n: getattr(signal, n)))
        assert preemption.requested() is None
        os.kill(os.getpid(), signum)
        for _ in range(100):  # Python runs the handler at the next bytecode boundary of the main thread
            if preemption.requested():
                break
            time.sleep(0.01)
        assert preemption.requested() == name
        os.kill(os.getpid(), signal.SIGURG if name != "SIGURG" else signal.SIGUSR1)
        time.sleep(0.05)
        assert preemption.requested() == name  # the first signal is the one reported
    assert signal.getsignal(signum) is before
    assert preemption.installed() == ()


def test_early_installation_keeps_its_request_and_its_handler():
    """`ltbench train` installs SIGURG first thing; the loop's handling() keeps that request and leaves
    SIGURG handled, and restores only the SIGUSR1/SIGTERM handlers that it added itself."""
    term_before = signal.getsignal(signal.SIGTERM)
    preemption.install(preemption.EARLY_SIGNALS)
    os.kill(os.getpid(), signal.SIGURG)
    time.sleep(0.05)
    with preemption.handling():
        assert preemption.requested() == "SIGURG"
        assert set(preemption.installed()) == {"SIGURG", "SIGUSR1", "SIGTERM"}
    assert preemption.installed() == ("SIGURG",)
    assert signal.getsignal(signal.SIGTERM) is term_before


def test_a_stale_request_does_not_stop_the_next_loop():
    preemption.install(("SIGUSR1",))
    os.kill(os.getpid(), signal.SIGUSR1)
    time.sleep(0.05)
    preemption.uninstall()
    assert preemption.requested() == "SIGUSR1"
    with preemption.handling():
        assert preemption.requested() is None


def test_handlers_are_not_installed_outside_the_main_thread():
    import threading

    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("ok", preemption.install()))
    thread.start()
    thread.join()
    assert result["ok"] is False and preemption.installed() == ()


def test_exit_for_resubmission_logs_and_exits_75(tmp_path):
    preemption.install(("SIGUSR1",))
    os.kill(os.getpid(), signal.SIGUSR1)
    time.sleep(0.05)
    with pytest.raises(SystemExit) as exc:
        preemption.exit_for_resubmission(7, 60, tmp_path / "model_0000007.pth", tmp_path)
    assert exc.value.code == preemption.EXIT_CODE == 75
    line = (tmp_path / "log.txt").read_text()
    assert "SIGUSR1 received: checkpointed at iteration 7/60 (model_0000007.pth); exiting with 75" in line


def test_checkpoint_minutes_and_the_wall_clock():
    assert preemption.checkpoint_seconds({}) == 30 * 60
    assert preemption.checkpoint_seconds({"checkpoint_minutes": 0.5}) == 30
    assert preemption.checkpoint_seconds({"checkpoint_minutes": 0}) is None
    assert preemption.checkpoint_seconds({"checkpoint_minutes": None}) is None
    for bad in (-1, "30", True):
        with pytest.raises(LtbenchError, match="schedule.checkpoint_minutes"):
            preemption.checkpoint_seconds({"checkpoint_minutes": bad})
    now = [100.0]
    wall = preemption.WallClock(60.0, clock=lambda: now[0])
    assert not wall.due()
    now[0] = 159.9
    assert not wall.due()
    now[0] = 160.0
    assert wall.due()
    wall.reset()
    assert not wall.due()
    assert not preemption.WallClock(None).due()


def test_the_workflow_passes_the_same_exit_code():
    from ltbench import workflow as wf

    assert wf.RESUBMIT_EXIT_CODE == preemption.EXIT_CODE


# --------------------------------------------------------------------------------------------------
# Through the torchvision adapter's training loop
# --------------------------------------------------------------------------------------------------
torch_required = pytest.mark.skipif(
    not all(__import__("importlib").util.find_spec(m) for m in ("torch", "torchvision")), reason="needs torch and torchvision"
)


def _final_model(path: Path) -> dict:
    import torch

    return torch.load(path, map_location="cpu", weights_only=False)["model"]


def _assert_same_weights(a: dict, b: dict) -> None:
    import torch

    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory, tiny_data):
    """6 iterations without interruption (one torch thread): the reference weights."""
    import torch

    from adapters import get_adapter
    from support.runs import tiny_run

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    run = tiny_run(id="tiny-preempt-00000000", schedule={"iterations": 6, "checkpoint_period": 100})
    workdir = tmp_path_factory.mktemp("straight")
    final = get_adapter("torchvision").train(run, workdir, tiny_data)
    torch.set_num_threads(previous)
    return run, _final_model(final)


@torch_required
@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name", preemption.SIGNALS)
def test_signal_during_training_checkpoints_exits_75_and_resumes_to_the_same_weights(name, straight_run, tiny_data, tmp_path, monkeypatch):
    from adapters import get_adapter
    from adapters.engine.trainer import Trainer

    run, reference = straight_run
    signum = getattr(signal, name)
    real_step = Trainer.run_step

    def step_then_signal(self):
        real_step(self)
        if self.iter == 2:  # the signal comes in the middle of iteration 3 (0-based 2)
            assert signal.getsignal(signum) is preemption._handler, "the loop did not install its handler"
            os.kill(os.getpid(), signum)

    monkeypatch.setattr(Trainer, "run_step", step_then_signal)
    workdir = tmp_path / "w"
    with pytest.raises(SystemExit) as exc:
        get_adapter("torchvision").train(run, workdir, tiny_data)
    assert exc.value.code == 75
    # the iteration in progress finished and was checkpointed (period 100: no other checkpoint exists)
    assert (workdir / "last_checkpoint").read_text().strip() == "model_0000003.pth"
    assert not (workdir / "done.json").exists()
    assert f"{name} received: checkpointed at iteration 3/6" in (workdir / "log.txt").read_text()
    assert signal.getsignal(signum) is not preemption._handler  # handlers restored after the exit

    monkeypatch.setattr(Trainer, "run_step", real_step)
    final = get_adapter("torchvision").train(run, workdir, tiny_data)
    _assert_same_weights(reference, _final_model(final))


@torch_required
@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_wall_time_checkpoints_come_besides_the_iteration_period(tiny_data, tmp_path):
    from adapters import get_adapter
    from support.runs import tiny_run

    run = tiny_run(id="tiny-wallclock-00000000",
                   schedule={"iterations": 4, "checkpoint_period": 100, "checkpoint_minutes": 1e-9, "keep_checkpoints": -1})
    workdir = tmp_path / "w"
    get_adapter("torchvision").train(run, workdir, tiny_data)
    assert sorted(p.name for p in workdir.glob("model_*.pth")) == [
        "model_0000001.pth", "model_0000002.pth", "model_0000003.pth", "model_final.pth"]
    off = tiny_run(id="tiny-wallclock-00000001", schedule={"iterations": 4, "checkpoint_period": 100, "checkpoint_minutes": 0,
                                                          "keep_checkpoints": -1})
    get_adapter("torchvision").train(off, tmp_path / "off", tiny_data)
    assert sorted(p.name for p in (tmp_path / "off").glob("model_*.pth")) == ["model_final.pth"]


def _catches(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has a handler for ``signum`` (SigCgt in /proc/<pid>/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(mask >> (signum - 1) & 1)


@torch_required
@pytest.mark.slow
def test_cli_signalled_before_the_loop_stops_after_one_iteration_and_resumes(straight_run, tiny_data, tmp_path):
    """`ltbench train` in a subprocess gets SIGURG while it is still importing torch and building the
    model (as a job signalled early): it trains one iteration, checkpoints, exits 75; started again it
    resumes and ends with the uninterrupted run's weights."""
    from support.runs import write_json

    run, reference = straight_run
    run_path = write_json(tmp_path / "run.json", run)
    workdir = tmp_path / "w"
    args = [sys.executable, "-m", "ltbench", "train", "--run-config", str(run_path), "--workdir", str(workdir),
            "--train-ann", str(tiny_data.train), "--val-ann", str(tiny_data.val), "--image-root", str(tiny_data.image_root)]
    env = {**os.environ, "LTBENCH_THREADS": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not _catches(proc.pid, signal.SIGURG) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "ltbench train ended before it handled SIGURG"
    assert not (workdir / "log.txt").exists(), "the signal was meant to come before the first iteration"
    os.kill(proc.pid, signal.SIGURG)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 75, stderr[-3000:]
    assert "SIGURG received: checkpointed at iteration 1/6 (model_0000001.pth); exiting with 75" in stderr
    assert (workdir / "last_checkpoint").read_text().strip() == "model_0000001.pth"

    resumed = subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from model_0000001.pth at iteration 1/6" in resumed.stderr
    _assert_same_weights(reference, _final_model(workdir / "model_final.pth"))


@torch_required
@pytest.mark.slow
def test_cli_sigterm_in_the_loop_exits_75_and_a_sigterm_before_the_loop_still_kills(tiny_data, tmp_path):
    """SIGTERM is handled by the loop only: before it (imports, model building) the process dies as
    always, so the mmdet/detectron2 trainers, which never check the flag, stay killable."""
    from support.runs import tiny_run, write_json

    run = tiny_run(id="tiny-preempt-00000001", schedule={"iterations": 200, "checkpoint_period": 1000})
    run_path = write_json(tmp_path / "run.json", run)
    env = {**os.environ, "LTBENCH_THREADS": "1", "OMP_NUM_THREADS": "1"}

    def start(workdir: Path) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "ltbench", "train", "--run-config", str(run_path), "--workdir", str(workdir),
             "--train-ann", str(tiny_data.train), "--val-ann", str(tiny_data.val), "--image-root", str(tiny_data.image_root)],
            env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    early = start(tmp_path / "early")
    deadline = time.time() + 60
    while not _catches(early.pid, signal.SIGURG) and early.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    early.send_signal(signal.SIGTERM)
    early.communicate(timeout=120)
    assert early.returncode == -signal.SIGTERM

    proc = start(tmp_path / "w")
    log = tmp_path / "w" / "log.txt"
    deadline = time.time() + 120
    while not (log.is_file() and "iter " in log.read_text()) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "training ended before it could be signalled"
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 75, stderr[-3000:]
    pointer = (tmp_path / "w" / "last_checkpoint").read_text().strip()
    assert pointer.startswith("model_0") and int(pointer[6:13]) < 200
    assert f"SIGTERM received: checkpointed at iteration {int(pointer[6:13])}/200" in stderr
