"""The slurm profile works against a real SLURM cluster (Debian slurm-wlm + munge) on localhost.

The test starts its own single-node cluster (munged if none is running, slurmctld and slurmd on
private ports with their state in a temporary folder), runs the real Snakefile with
``--profile slurm --config scale=smoke`` in a scratch copy of the workflow, and stops what it started.
The SLURM job evaluates a detections file built from the ground truth itself, so the metrics must be
perfect (AP = 100): proof that a real sbatch job ran the evaluate rule end to end.

Skipped where SLURM or munge is not installed, when not running as root (the daemons need it), or
when a SLURM configuration that this test did not write exists at /etc/slurm/slurm.conf (a real
cluster: left alone). With ``LTBENCH_REQUIRE_SLURM=1`` (set by ``.ci/run``, after ``.ci/setup-slurm``
installed slurm-wlm and munge) each of these is a failure instead: CI never skips the SLURM tests.
The configuration this test writes starts with ``MARKER``; one left by a killed test run is replaced.
A lock (``LOCK``) keeps two test sessions on one machine from sharing the default path.

The configuration must sit at the default path: the SLURM plugin's job step (snakemake-executor-plugin-
slurm-jobstep 0.6) removes every ``SLURM_*`` variable but a few ids from the environment of its nested
``srun``, ``SLURM_CONF`` included, so a configuration elsewhere is not found inside the job.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ltbench import paths

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

DEFAULT_CONF = Path("/etc/slurm/slurm.conf")
MARKER = "# written by ltbench tests/test_slurm_cluster.py; removed when the test ends"
LOCK = Path("/run/ltbench-slurm-test.lock")
DAEMONS = ("slurmctld", "slurmd", "munged", "sbatch", "squeue", "sinfo", "scontrol", "scancel", "munge", "unmunge")
REQUIRED = os.environ.get("LTBENCH_REQUIRE_SLURM") == "1"


def _unavailable(reason: str) -> None:
    """Skip, or fail where the SLURM tests are required (CI)."""
    if REQUIRED:
        pytest.fail(f"{reason} (LTBENCH_REQUIRE_SLURM=1: the SLURM tests must run here; see .ci/setup-slurm)")
    pytest.skip(reason)


def _which(name: str) -> str | None:
    return shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None)


def _skip_reason() -> str | None:
    missing = [d for d in DAEMONS if _which(d) is None]
    if missing:
        return "SLURM/munge not installed (apt-get install slurm-wlm munge): missing " + ", ".join(missing)
    if os.geteuid() != 0:
        return "starting slurmctld/slurmd/munged needs root"
    if not Path("/etc/munge/munge.key").is_file():
        return "no /etc/munge/munge.key (created by the munge package)"
    if _foreign_conf():
        return f"{DEFAULT_CONF} exists and was not written by this test (a configured SLURM installation is not touched)"
    return None


def _foreign_conf() -> bool:
    try:
        return not DEFAULT_CONF.read_text().startswith(MARKER)
    except FileNotFoundError:
        return False


def _stop_leftover_cluster() -> None:
    """A configuration with our marker while we hold the lock: a killed test run left it (and perhaps
    its daemons). Stop those daemons through it; the configuration is then rewritten."""
    if DEFAULT_CONF.is_file() and not _foreign_conf():
        try:
            subprocess.run([_which("scontrol"), "shutdown"], env={**os.environ, "SLURM_CONF": str(DEFAULT_CONF)},
                           capture_output=True, timeout=30)
        except subprocess.TimeoutExpired:
            pass
        time.sleep(2)


@pytest.fixture(scope="module")
def slurm_lock():
    """Exclusive use of the default configuration path on this machine (two test sessions would share it)."""
    reason = _skip_reason()
    if reason:
        _unavailable(reason)
    import fcntl

    with open(LOCK, "w") as lock:
        deadline = time.time() + 1800
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.time() > deadline:
                    _unavailable(f"another test session has held {LOCK} (its SLURM test cluster) for 30 minutes")
                time.sleep(2)
        if _foreign_conf():  # appeared while we waited
            _unavailable(f"{DEFAULT_CONF} exists and was not written by this test")
        _stop_leftover_cluster()
        yield  # closing the file releases the lock


def _munge_works() -> bool:
    try:
        cred = subprocess.run([_which("munge"), "-n"], capture_output=True, timeout=10, check=True).stdout
        return subprocess.run([_which("unmunge")], input=cred, capture_output=True, timeout=10).returncode == 0
    except (subprocess.SubprocessError, OSError):
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory, slurm_lock):
    """A running single-node cluster; yields the environment that points clients at it."""
    root = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool", "log"):
        (root / sub).mkdir()
    started_munged = False
    if not _munge_works():
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        subprocess.run(["runuser", "-u", "munge", "--", _which("munged")], check=True, timeout=30)
        started_munged = True
        for _ in range(50):
            if _munge_works():
                break
            time.sleep(0.2)
        else:
            _unavailable("munged did not come up (see /var/log/munge/munged.log)")
    host = socket.gethostname().split(".")[0]
    mem_mb = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 * 0.8)
    conf = DEFAULT_CONF
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(
        "\n".join([
            MARKER,
            "ClusterName=ltbenchtest",
            f"SlurmctldHost={host}",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "AuthType=auth/munge",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            f"StateSaveLocation={root / 'state'}",
            f"SlurmdSpoolDir={root / 'spool'}",
            f"SlurmctldPidFile={root / 'slurmctld.pid'}",
            f"SlurmdPidFile={root / 'slurmd.pid'}",
            f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={root / 'log' / 'slurmd.log'}",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "SlurmUser=root",
            "ReturnToService=2",
            "MinJobAge=600",  # squeue must still see finished jobs when the plugin asks
            f"NodeName={host} CPUs={os.cpu_count()} RealMemory={mem_mb} State=UNKNOWN",
            f"PartitionName=ltbench Nodes={host} Default=YES MaxTime=INFINITE State=UP",
            "",
        ])
    )
    env = {**os.environ, "SLURM_CONF": str(conf)}
    env.pop("SLURM_JOB_ID", None)
    try:
        subprocess.run([_which("slurmctld")], env=env, check=True, timeout=60)
        subprocess.run([_which("slurmd")], env=env, check=True, timeout=60)
        for _ in range(60):
            out = subprocess.run([_which("sinfo"), "-h", "-o", "%t"], env=env, capture_output=True, text=True).stdout
            if out.strip() in ("idle", "mix", "alloc"):
                break
            time.sleep(0.5)
        else:
            logs = "".join(p.read_text()[-1500:] for p in sorted((root / "log").glob("*.log")))
            pytest.fail(f"the SLURM node did not become idle: {out!r}; daemon logs:\n{logs}")
        yield env
    finally:
        subprocess.run([_which("scontrol"), "shutdown"], env=env, capture_output=True, timeout=60)
        for pid_file in (root / "slurmctld.pid", root / "slurmd.pid"):
            _wait_gone(pid_file)
        conf.unlink(missing_ok=True)
        if started_munged:
            _wait_gone(Path("/run/munge/munged.pid"), kill=True)


def _wait_gone(pid_file: Path, kill: bool = False) -> None:
    """Wait for the daemon of ``pid_file`` to exit (SIGTERM it first when ``kill``), SIGKILL after 20 s."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return
    if kill:
        _signal(pid, signal.SIGTERM)
    for _ in range(100):
        if not _alive(pid):
            return
        time.sleep(0.2)
    _signal(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _scratch_workflow(tmp: Path) -> Path:
    """A copy of the workflow (Snakefile, rules, configs, profiles) so results land in ``tmp``."""
    work = tmp / "wf"
    work.mkdir()
    shutil.copy2(paths.REPO_ROOT / "Snakefile", work / "Snakefile")
    shutil.copytree(paths.REPO_ROOT / "workflows", work / "workflows", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(paths.REPO_ROOT / "profiles", work / "profiles")
    (work / "slurm").symlink_to("profiles/slurm")
    return work


def _perfect_detections(gt_path: Path, out_dir: Path) -> None:
    """Detections = the ground truth with score 1 (AP 100), plus a diagonal confusion matrix."""
    import numpy as np
    from pycocotools import mask as mask_utils

    gt = json.loads(gt_path.read_text())
    sizes = {im["id"]: (im["height"], im["width"]) for im in gt["images"]}
    dets = []
    for a in gt["annotations"]:
        h, w = sizes[a["image_id"]]
        seg = a["segmentation"]
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w)) if isinstance(seg, list) else seg
        if isinstance(rle["counts"], bytes):
            rle = {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
        dets.append({"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0,
                     "segmentation": rle})
    out_dir.mkdir(parents=True)
    (out_dir / "detections.json").write_text(json.dumps(dets))
    cats = np.array(sorted(c["id"] for c in gt["categories"]), dtype=np.int64)
    n = len(cats)
    np.savez(out_dir / "proposal_stats.npz", category_ids=cats, cm_sum=np.eye(n), cm_count=np.ones(n, dtype=np.int64),
             cls_pred=np.arange(n, dtype=np.int64), cls_target=np.arange(n, dtype=np.int64))


def _smoke_v05_run(slurm_env: dict, tmp_path: Path):
    """(environment for the workflow, the plan's first v0.5 row, its run config, its dataset paths): PCB
    Table 2 planned at smoke scale and its synthetic data generated under ``tmp_path/data``."""
    from ltbench.data.datasets import ensure
    from ltbench.plan import build_plan

    env = {**slurm_env, "LTBENCH_DATA": str(tmp_path / "data"), "SLURM_PARTITION": "ltbench"}
    os.environ["LTBENCH_DATA"] = env["LTBENCH_DATA"]  # for ensure() below, in this process
    try:
        plan = build_plan(targets=["tables/pcb_table2.md"], scale="smoke")
        row = next(r for r in plan.rows if r.run_ids and r.group == "v0.5")
        config = plan.runs[row.run_ids[0]].config
        data = ensure(config["dataset"], "smoke")
    finally:
        os.environ.pop("LTBENCH_DATA", None)
    return env, row, config, data


def _train_through_slurm(config_file: str, target: str) -> list[str]:
    """The snakemake command that trains ``target`` through the slurm profile with ``config_file`` on top."""
    return [
        sys.executable, "-m", "snakemake", "--profile", "slurm",
        "--configfile", "workflows/config/config.yaml", config_file, "--config", "scale=smoke",
        "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "1",
        "--slurm-no-account", "--slurm-keep-successful-logs", "--jobs", "2", "--latency-wait", "10",
        "--allowed-rules", "train", "data", "--", target,
    ]


def test_snakemake_slurm_profile_runs_a_smoke_job_through_sbatch(slurm_cluster, tmp_path):
    env, row, _, data = _smoke_v05_run(slurm_cluster, tmp_path)
    run_id, view_id = row.run_ids[0], row.view_id
    work = _scratch_workflow(tmp_path)
    _perfect_detections(data.val, work / "results" / "predictions" / run_id / view_id)
    target = f"results/metrics/{run_id}/{view_id}.json"
    cmd = [
        sys.executable, "-m", "snakemake", "--profile", "slurm", "--config", "scale=smoke",
        "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "1",
        "--slurm-no-account", "--slurm-keep-successful-logs", "--jobs", "2", "--latency-wait", "10",
        # predictions were made above: only evaluate (and the local data check) may run
        "--allowed-rules", "evaluate", "data", "--", target,
    ]
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=420)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert "SLURM" in log and "jobid" in log.lower(), log[-2000:]
    metrics = json.loads((work / target).read_text())
    assert metrics["bbox.AP"] == pytest.approx(100.0, abs=1e-6)
    assert metrics["segm.AP"] == pytest.approx(100.0, abs=1e-6)
    # the job really ran under SLURM: its log and SLURM's own job log exist
    assert (work / "results" / "logs" / run_id / f"evaluate_{view_id}.log").is_file()
    assert list((work / ".snakemake" / "slurm_logs").rglob("*.log")), "no SLURM job log"


def _scontrol_job(job_id: str, env: dict) -> dict[str, str]:
    """``scontrol show job -o ID`` as a dict (the cluster keeps finished jobs for MinJobAge=600 s)."""
    out = subprocess.run([_which("scontrol"), "show", "job", "-o", job_id], env=env, capture_output=True, text=True).stdout
    return dict(item.split("=", 1) for item in out.split() if "=" in item)


def test_training_job_signalled_before_its_time_limit_is_resubmitted_and_resumes(slurm_cluster, tmp_path):
    """A smoke training run through `--profile slurm` with a 1-minute time limit: SLURM signals the job
    (SIGURG, slurm.checkpoint_signal_s before the limit), the training checkpoints and exits 75, Snakemake
    resubmits it (train retries), the next job resumes from the checkpoint, and the final weights equal,
    tensor for tensor, those of the same run trained without interruption."""
    import re

    import torch

    env, _, config, _ = _smoke_v05_run(slurm_cluster, tmp_path)
    run_id = config["id"]
    iterations = int(config["schedule"]["iterations"])
    work = _scratch_workflow(tmp_path)
    # 1-minute jobs; SLURM's signal comes 10 s before the limit, or up to 30 s earlier (its timer ticks
    # every 30 s): 20-50 s after the job starts, each job trains a part of the ~60 iterations.
    (work / "limits.yaml").write_text("slurm: {max_runtime_min: 1, checkpoint_signal_s: 10, train_retries: 10}\n")

    # The reference: the same run config, uninterrupted, on the machine's other core meanwhile.
    reference = tmp_path / "reference"
    reference.mkdir()
    (reference / "run.json").write_text(json.dumps(config))
    ref_env = {**env, "OMP_NUM_THREADS": "1"}  # the train rule runs with OMP_NUM_THREADS={threads} = 1
    ref = subprocess.Popen([sys.executable, "-m", "ltbench", "train", "--run-config", str(reference / "run.json"),
                            "--workdir", str(reference / "work")], env=ref_env, cwd=paths.REPO_ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    t0 = time.monotonic()
    target = f"results/runs/{run_id}/train.done"
    cmd = _train_through_slurm("limits.yaml", target)
    workdir = work / "work" / run_id
    out_path = tmp_path / "snakemake.out"
    signalled_by_test = False
    try:
        with open(out_path, "w") as out:
            proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
            # SLURM's timer ticks every 30 s: on a fast machine the first job may finish its ~60 iterations before
            # SLURM's own signal. Then the test sends the same signal to the job's steps (`scancel --signal URG`,
            # what `--signal=URG@N` does at the limit) once training is under way, so a stop always happens.
            deadline = time.monotonic() + 1200
            while proc.poll() is None and time.monotonic() < deadline:
                text = (workdir / "log.txt").read_text() if (workdir / "log.txt").is_file() else ""
                if not signalled_by_test and "SIGURG received" not in text and re.search(r"^iter (\d+)/", text, re.M):
                    running = subprocess.run([_which("squeue"), "-h", "-t", "R", "-o", "%i"], env=env, capture_output=True,
                                             text=True).stdout.split()
                    for job in running:
                        subprocess.run([_which("scancel"), "--signal=URG", job], env=env, capture_output=True)
                    signalled_by_test = bool(running)
                time.sleep(0.5)
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    finally:
        ref_out, _ = ref.communicate(timeout=600)
    wall = time.monotonic() - t0
    log = out_path.read_text()
    assert proc.returncode == 0, log[-6000:]
    assert ref.returncode == 0, ref_out[-3000:]

    assert json.loads((work / "results" / "runs" / run_id / "run.json").read_text()) == config
    assert (workdir / "done.json").is_file()
    # exit 75 is no failure: the train rule wrote no failure note (`results done` would leave the folder)
    assert not (work / "results" / "failures" / run_id).exists()
    # signal -> checkpoint -> exit 75, at least once (the training's own append-only log)
    stops = [int(i) for i in re.findall(rf"SIGURG received: checkpointed at iteration (\d+)/{iterations}", (workdir / "log.txt").read_text())]
    assert stops, (workdir / "log.txt").read_text()[-3000:]
    assert stops == sorted(stops) and stops[-1] < iterations
    # -> resubmitted: one SLURM job per attempt, every one of them asked for at most the cap (1 minute)
    job_logs = sorted((work / ".snakemake" / "slurm_logs" / "rule_train").rglob("*.log"))
    job_ids = sorted((p.stem for p in job_logs), key=int)
    assert len(job_ids) >= len(stops) + 1, job_ids
    jobs = {j: _scontrol_job(j, env) for j in job_ids}
    assert all(info.get("TimeLimit") == "00:01:00" for info in jobs.values()), jobs
    exited_75 = [p.stem for p in job_logs if "returned non-zero exit status 75" in p.read_text()]
    assert len(exited_75) >= 1
    # resubmitted by the Snakemake that runs the workflow, never restarted inside a job's allocation
    assert len(re.findall(r"has been submitted with SLURM jobid \d+", log)) == len(job_ids)
    assert not [p.stem for p in job_logs if "Trying to restart" in p.read_text()]
    # -> resumed: the last job started from the last checkpoint of the job before it
    train_log = (work / "results" / "logs" / run_id / "train.log").read_text()
    assert f"resuming from model_{stops[-1]:07d}.pth at iteration {stops[-1]}/{iterations}" in train_log, train_log[-2000:]
    # the same weights as the uninterrupted run, every tensor
    a = torch.load(reference / "work" / "model_final.pth", map_location="cpu", weights_only=False)["model"]
    b = torch.load(workdir / "model_final.pth", map_location="cpu", weights_only=False)["model"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    summary = [f"time-limit test: {wall:.0f} s, {len(job_ids)} SLURM jobs, stops at iterations {stops}"
               + (" (the first signal sent by the test: scancel --signal=URG)" if signalled_by_test else " (SLURM's own signals)")]
    for j in job_ids:
        info = jobs[j]
        summary.append(f"  job {j}: TimeLimit={info.get('TimeLimit')} RunTime={info.get('RunTime')} "
                       f"JobState={info.get('JobState')} ExitCode={info.get('ExitCode')}" + (" (exit 75)" if j in exited_75 else ""))
    summary += [line for line in (workdir / "log.txt").read_text().splitlines() if "received" in line]
    summary += [line for line in train_log.splitlines() if line.startswith("resuming")]
    print("\n".join(summary))


def test_training_with_two_srun_tasks_runs_two_gloo_ranks(slurm_cluster, tmp_path):
    """A smoke training run through `--profile slurm` with `training: {ranks: 2, launcher: srun}`: one SLURM
    job of 2 tasks (the plugin's `tasks` with `mpi: srun`), the rule's command starts the ranks with srun,
    each rank joins the gloo group from SLURM's variables, and the run records 2 ranks that split its batch."""
    env, _, config, _ = _smoke_v05_run(slurm_cluster, tmp_path)
    run_id = config["id"]
    work = _scratch_workflow(tmp_path)
    (work / "ranks.yaml").write_text("training: {ranks: 2, launcher: srun}\n")
    target = f"results/runs/{run_id}/train.done"
    cmd = _train_through_slurm("ranks.yaml", target)
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=1200)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    job_logs = sorted((work / ".snakemake" / "slurm_logs" / "rule_train").rglob("*.log"))
    assert len(job_logs) == 1, job_logs
    info = _scontrol_job(job_logs[0].stem, env)
    assert info.get("NumTasks") == "2", info
    train_log = (work / "results" / "logs" / run_id / "train.log").read_text()
    assert "launching 2 ranks: srun --ntasks=2 --ntasks-per-node=2" in train_log, train_log[-3000:]
    training = json.loads((work / "work" / run_id / "done.json").read_text())["training"]
    batch = int(config["schedule"]["batch_size"])
    assert training["ranks"] == 2 and training["batch_total"] == batch and training["batch_per_rank"] == batch // 2, training
    print(f"2-task SLURM training: job {job_logs[0].stem} NumTasks={info.get('NumTasks')} "
          f"RunTime={info.get('RunTime')} training={training}")
