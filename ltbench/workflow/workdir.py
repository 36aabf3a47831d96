"""A training work directory (``work/<run>/``): who trains in it, and training it again.

**The lock.** ``ltbench train`` holds an exclusive ``flock`` on ``<workdir>/train.lock`` for the life of its process
(with ranks > 1, the launcher process, which outlives its ranks; ``holds_lock``). The file names the holder (pid,
host, start time, command). A second trainer in the same directory fails at once with ``WorkdirLocked`` naming
it, instead of interleaving checkpoints with it: e.g. the training a killed Snakemake left running (an orphan),
or a second Snakemake on another machine of a shared file system. The kernel drops the lock when its process ends,
however it ends: a stale ``train.lock`` file is harmless.

**Training again.** A work directory holds a finished training when ``done.json`` is there; the adapters then
return its checkpoint at once. ``ltbench train --retrain`` moves such a directory aside to
``<workdir>.previous-<UTC time>`` (under the lock) and trains from scratch in a fresh one; the old one is removed
once the new training has finished (``done.json``), and kept (to be renamed back by hand) while it has not. An
unfinished directory always resumes from ``last_checkpoint``.

**The workflow's rule** (``ltbench step train``, ``job_decision``). Snakemake runs a training job when the run's
marker ``results/runs/<run>/train.done`` is missing or out of date, and deletes the marker first. Why it runs
decides what happens to a finished work directory:

- the user forced it (``--forcerun results/runs/<run>/train.done``, ``--forcerun train``, ``-F``, ``-f`` on the
  marker): the train rule's input function leaves ``results/runs/<run>/train.retrain.json`` while Snakemake builds
  its DAG (``request_retrain``), and a request newer than ``done.json`` trains the run again;
- the run it starts from (stage 1, ``init_from``) finished after it: trained again too;
- anything else (``--rerun-incomplete`` after a killed Snakemake whose job finished anyway, a deleted marker, a
  changed set of inputs): the finished training is marked, not repeated; the log says how to force it.

The request is removed with the new marker; a retrain that failed leaves it, so the job's next run resumes the new
(unfinished) training and a later one does not start it over (the request is older than its ``done.json``).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ltbench.errors import LtbenchError

LOCK_FILE = "train.lock"
DONE_FILE = "done.json"
PREVIOUS = ".previous-"
#: beside train.done: the user forced the run's training job (``request_retrain``); removed with the new marker
REQUEST_FILE = "train.retrain.json"


class WorkdirLocked(LtbenchError):
    """Another process trains in this work directory."""


def holds_lock(environ: dict | None = None) -> bool:
    """Whether this ``ltbench train`` process takes the work directory's lock: a process no launcher started (it
    launches the ranks itself, or trains alone), or rank 0 of ranks that a launcher other than ours started
    (torchrun or srun by hand). The ranks of our own relaunch leave it to their launcher."""
    from adapters.engine.launch import LAUNCHED_ENV, inside_launcher

    env = os.environ if environ is None else environ
    if not inside_launcher(env):
        return True
    if env.get(LAUNCHED_ENV):
        return False
    return str(env.get("RANK", env.get("SLURM_PROCID", "0"))) == "0"


def holder_text(info: dict | None) -> str:
    if not info:
        return "a process that has not said who it is yet"
    since = f", since {info['started']}" if info.get("started") else ""
    return f"pid {info.get('pid', '?')} on host {info.get('host', '?')}{since}"


class WorkdirLock:
    """The exclusive lock of one work directory, held from ``acquire`` until ``release`` or the process ends."""

    def __init__(self, workdir: str | os.PathLike[str]):
        self.workdir = Path(workdir)
        self.path = self.workdir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> WorkdirLock:
        self.workdir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = read_holder(fd)
            os.close(fd)
            stop = f"kill {holder['pid']} on {holder.get('host', 'its host')}" if holder and holder.get("pid") else "stop it"
            raise WorkdirLocked(
                f"another `ltbench train` is training in {self.workdir}: {holder_text(holder)} holds {self.path}",
                path=self.workdir,
                expected="one trainer per work directory",
                hint=f"wait for it to finish, or {stop} if no workflow runs it any more (README, Recovery: orphaned jobs)",
            ) from None
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command": " ".join(sys.argv)}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> WorkdirLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def read_holder(fd_or_path: int | str | os.PathLike[str]) -> dict | None:
    """The holder a lock file names (None when it names none yet)."""
    try:
        if isinstance(fd_or_path, int):
            text = os.pread(fd_or_path, 4096, 0).decode("utf-8", "replace")
        else:
            text = Path(fd_or_path).read_text(encoding="utf-8", errors="replace")
        info = json.loads(text)
        return info if isinstance(info, dict) else None
    except (OSError, ValueError):
        return None


def finished(workdir: str | os.PathLike[str]) -> bool:
    return (Path(workdir) / DONE_FILE).is_file()


def previous_dirs(workdir: str | os.PathLike[str]) -> list[Path]:
    """The directories ``--retrain`` set aside for ``workdir`` (oldest first)."""
    workdir = Path(workdir)
    if not workdir.parent.is_dir():
        return []
    return sorted(p for p in workdir.parent.glob(f"{workdir.name}{PREVIOUS}*") if p.is_dir())


def set_aside(workdir: str | os.PathLike[str]) -> Path:
    """Rename ``workdir`` to ``<workdir>.previous-<UTC time>`` (a new name every time); returns the new path."""
    workdir = Path(workdir)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = workdir.with_name(f"{workdir.name}{PREVIOUS}{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = workdir.with_name(f"{workdir.name}{PREVIOUS}{stamp}-{n}")
    workdir.rename(target)
    return target


def remove_previous(workdir: str | os.PathLike[str]) -> list[Path]:
    """Delete the set-aside directories of ``workdir`` (once its new training has finished)."""
    gone = previous_dirs(workdir)
    for path in gone:
        shutil.rmtree(path, ignore_errors=True)
    return gone


@dataclass(frozen=True)
class JobDecision:
    """What a workflow training job does with its work directory: ``retrain`` (a finished one, from scratch),
    ``mark`` (a finished one: write its marker only) or ``train`` (start, or resume an unfinished one)."""

    action: str
    message: str


def forced_by(dag_settings, rule: str, output: str) -> str | None:
    """The Snakemake option that forces the job of ``rule`` making ``output`` (``--forceall``, ``--forcerun train``,
    ``--forcerun <output>``, ``--force <output>``), or None. ``dag_settings``: ``workflow.dag_settings``."""
    if dag_settings is None:
        return None
    allowed = set(getattr(dag_settings, "allowed_rules", None) or ())
    if allowed and rule not in allowed:
        return None
    if getattr(dag_settings, "forceall", False):
        return "--forceall"
    wanted = {rule, os.path.normpath(output)}
    for name in getattr(dag_settings, "forcerun", None) or ():
        if os.path.normpath(str(name)) in wanted:
            return f"--forcerun {name}"
    if getattr(dag_settings, "forcetargets", False):
        for name in getattr(dag_settings, "targets", None) or ():
            if os.path.normpath(str(name)) in wanted:
                return f"--force {name}"
    return None


def request_retrain(workflow, rule: str, output: str, request: str | os.PathLike[str]) -> str | None:
    """From the train rule's input function, while Snakemake builds its DAG: when the user forces this training job,
    write ``request`` (``results/runs/<run>/train.retrain.json``) so that the job, wherever it runs (a SLURM job
    builds its own DAG, without the user's options), trains a finished work directory again. Nothing is written
    in a dry run, a --touch run, or inside a job. Returns the forcing option."""
    if getattr(workflow, "remote_exec", False) or getattr(workflow, "subprocess_exec", False):
        return None
    how = forced_by(getattr(workflow, "dag_settings", None), rule, output)
    if how is None or getattr(workflow, "dryrun", False) or getattr(workflow, "touch", False):
        return how
    from ltbench.io import write_json
    from ltbench.store.provenance import utc_now

    write_json(request, {"output": output, "forced_by": how, "requested": utc_now()})
    return how


def job_decision(run_id: str, workdir: str | os.PathLike[str], request: str | os.PathLike[str],
                 parents: tuple[str | os.PathLike[str] | None, ...] = ()) -> JobDecision:
    """What a training job of ``run_id`` that Snakemake started does with ``workdir`` (the module's rule).

    ``request``: the retrain request (``request_retrain``); ``parents``: the work directories of the runs this one
    starts from (stage 1, init_from)."""
    workdir, request = Path(workdir), Path(request)
    done = workdir / DONE_FILE
    if not done.is_file():
        checkpoint = workdir / "last_checkpoint"
        if checkpoint.is_file():
            name = checkpoint.read_text(encoding="utf-8").strip()
            return JobDecision("train", f"{workdir} holds an unfinished training: resuming it from {name}")
        return JobDecision("train", f"training {run_id} from scratch in {workdir}")
    finished_at = done.stat().st_mtime
    later = "; the old directory is kept beside it until the new training finishes, then removed"
    if request.is_file() and request.stat().st_mtime > finished_at:
        how = (read_holder(request) or {}).get("forced_by", "forced")
        return JobDecision("retrain", f"{workdir} holds a finished training ({done}) and this job was forced ({how}): "
                                      f"training it again from scratch{later}")
    for parent in parents:
        parent_done = Path(parent) / DONE_FILE if parent else None
        if parent_done is not None and parent_done.is_file() and parent_done.stat().st_mtime > finished_at:
            return JobDecision("retrain", f"{workdir} holds a finished training, but the run it starts from was trained "
                                          f"again after it ({parent_done}): training it again from scratch{later}")
    return JobDecision("mark", f"{workdir} holds a finished training ({done}): nothing to train, writing its marker "
                               f"(to train it again: snakemake --forcerun results/runs/{run_id}/train.done -- <target>)")
