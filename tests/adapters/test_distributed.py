"""Data-parallel training on CPU ranks (gloo), through each framework's own machinery: ``ltbench train
--ranks 2`` (torchrun for torchvision and mmdet, ``detectron2.engine.launch`` for detectron2).

- The same global batch over 1 or 2 ranks: the first iteration's losses are the single-rank ones (the mask
  loss excepted: every framework averages it over a rank's own positive RoIs, so with ranks it is the mean
  of the ranks' means), and the final weights stay within a small tolerance of the single-rank run's.
  To compare like with like the test model has frozen BatchNorm (as every paper-scale model, whose ImageNet
  BN is frozen) and samples every anchor and RoI (no random subset), and every image gets the same flip
  whatever the number of ranks (``adapters.torchvision.adapter``'s global flips).
- A 2-rank run killed with SIGKILL (the whole launcher process group) and started again reaches the same
  weights as an uninterrupted 2-rank run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.adapters import model_state
from support.processes import kill_tree
from support.runs import tiny_run, write_json

torch = pytest.importorskip("torch")

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def ddp_run(framework: str, weights: Path, **schedule) -> dict:
    model = {"weights": str(weights), "rpn_batch_size_per_image": 4096, "box_batch_size_per_image": 512}
    if framework == "mmdet":  # mmdet's default 1000 proposals would be subsampled at random: keep <= 128 positives
        model.update(rpn_pre_nms_top_n_train=200, rpn_post_nms_top_n_train=100)
    return tiny_run(id=f"tiny-{framework}-ddp-00000000", framework=framework,
                    schedule={"iterations": 6, "checkpoint_period": 3, "batch_size": 8, "warmup_iters": 2, "steps": [5], **schedule},
                    model=model)


def train_cli(run: dict, workdir: Path, data, ranks: int, tmp_path: Path, *, wait: bool = True):
    run_path = write_json(tmp_path / f"{run['id']}.json", run)
    args = [sys.executable, "-m", "ltbench", "train", "--run-config", str(run_path), "--workdir", str(workdir), "--ranks", str(ranks),
            "--train-ann", str(data.train), "--val-ann", str(data.val), "--image-root", str(data.image_root)]
    env = {**os.environ, "LTBENCH_THREADS": "1", "OMP_NUM_THREADS": "1"}
    if not wait:
        return subprocess.Popen(args, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-4000:]
    return done


def first_losses(workdir: Path) -> dict[str, float]:
    line = next(line for line in (workdir / "log.txt").read_text().splitlines() if line.startswith("iter 1/"))
    return {k: float(v) for k, v in re.findall(r"(loss\w*)=([-\d.]+)", line)}


def final_checkpoint(workdir: Path) -> Path:
    import json

    return workdir / json.loads((workdir / "done.json").read_text())["checkpoint"]


def test_two_ranks_train_the_single_rank_batch(framework, resnet18_weights, tiny_data, tmp_path) -> None:
    run = ddp_run(framework, resnet18_weights)
    train_cli(run, tmp_path / "one", tiny_data, 1, tmp_path)
    train_cli(run, tmp_path / "two", tiny_data, 2, tmp_path)
    one, two = first_losses(tmp_path / "one"), first_losses(tmp_path / "two")
    assert one.keys() == two.keys()
    if framework == "detectron2":
        # Known gap: detectron2's DatasetMapper draws each image's flip from the rank's numpy stream, so 2 ranks
        # flip other images than 1 process (the torchvision adapter draws them per global batch; not yet here).
        pytest.xfail(f"detectron2 flips differ between 1 and 2 ranks: {one} vs {two}")
    for key in one:
        if "mask" in key or key == "loss":
            continue
        # mmdet's R-CNN losses are averaged over the rank's sampled RoIs (bbox_head.py: avg_factor = RoIs with
        # weight, bbox_targets.size(0)), whose number varies per image below the sampler's 512: a mean of the
        # ranks' means, measured within 2% of the single-rank loss
        rel = 5e-2 if (framework, key) in (("mmdet", "loss_cls"), ("mmdet", "loss_bbox")) else 2e-3
        assert two[key] == pytest.approx(one[key], rel=rel, abs=2e-4), (key, one, two)
    import json

    training = json.loads((tmp_path / "two" / "done.json").read_text())["training"]
    assert training["ranks"] == 2 and training["batch_per_rank"] == 4 and training["batch_total"] == 8
    assert training["cpu_capability"] == torch.backends.cpu.get_cpu_capability()  # e.g. AVX2: mini bits depend on it
    a, b = model_state(framework, final_checkpoint(tmp_path / "one")), model_state(framework, final_checkpoint(tmp_path / "two"))
    floats = [k for k in a if a[k].is_floating_point() and a[k].numel()]
    distance = sum(float(((a[k].float() - b[k].float()) ** 2).sum()) for k in floats) ** 0.5
    size = sum(float((a[k].float() ** 2).sum()) for k in floats) ** 0.5
    # 6 SGD steps: the per-rank normalised losses (mask; mmdet's R-CNN losses) and float summation order move
    # the weights a little: measured 0.4% (mmdet) of the weights' norm
    assert distance / size < 0.02, distance / size


def test_two_ranks_killed_and_resumed_reach_the_uninterrupted_weights(framework, resnet18_weights, tiny_data, tmp_path) -> None:
    run = ddp_run(framework, resnet18_weights, iterations=8, checkpoint_period=1)
    train_cli(run, tmp_path / "straight", tiny_data, 2, tmp_path)
    workdir = tmp_path / "killed"
    proc = train_cli(run, workdir, tiny_data, 2, tmp_path, wait=False)
    deadline = time.time() + 900
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        pointer = workdir / "last_checkpoint"
        if pointer.is_file() and pointer.read_text().strip() and "final" not in pointer.read_text():
            killed_at = pointer.read_text().strip()
            killed = kill_tree(proc.pid)  # the launcher and every rank at once (torchrun's workers have their own sessions)
            break
        time.sleep(0.05)
    proc.wait()
    assert killed_at is not None, "training ended before it could be killed"
    assert len(killed) >= 3  # ltbench, torchrun (or detectron2's launch) and two ranks
    assert not (workdir / "done.json").exists()
    done = train_cli(run, workdir, tiny_data, 2, tmp_path)
    a = model_state(framework, final_checkpoint(tmp_path / "straight"))
    b = model_state(framework, final_checkpoint(workdir))
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert "resum" in (workdir / "log.txt").read_text() or "resum" in done.stderr


def test_two_ranks_report_the_pcb_regulariser_of_the_whole_global_batch(resnet18_weights, tiny_data, tmp_path) -> None:
    """done.json's training.pcb (read by the regression check as train.pcb.*) sums the soft targets over the
    ranks: 2 ranks on the same global batch report the single-rank counts and off-label share."""
    import json

    run = ddp_run("torchvision", resnet18_weights)
    run.update(id="tiny-torchvision-ddp-pcb-00000000", head={"name": "iterative", "steps": 3},
               regularizer={"name": "pcb", "start_fraction": 0.0})
    train_cli(run, tmp_path / "one", tiny_data, 1, tmp_path)
    train_cli(run, tmp_path / "two", tiny_data, 2, tmp_path)
    one, two = (json.loads((tmp_path / n / "done.json").read_text())["training"]["pcb"] for n in ("one", "two"))
    assert one["regularised_iterations"] > 0 and one["targets"] > 0 and 0 < one["offlabel_pct"] < 100, one
    assert two["regularised_iterations"] == one["regularised_iterations"], (one, two)
    # After the first step the weights differ a little (see above), so the proposals and their positive RoIs do:
    # measured 188 against 204 targets and 74.980 against 74.981 %. Rank 0's own share would be about half.
    assert two["targets"] == pytest.approx(one["targets"], rel=0.2), (one, two)
    assert two["offlabel_pct"] == pytest.approx(one["offlabel_pct"], abs=1.0), (one, two)
