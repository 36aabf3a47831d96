"""``ltbench train``: train one resolved run into its work directory (resumable)."""

from __future__ import annotations

from pathlib import Path

import click

from ltbench.commands.predict import data_options, resolve_data


@click.command(name="train")
@click.option("--run-config", "run_config_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Resolved run config (JSON) from `ltbench plan`.")
@click.option("--workdir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Work directory: checkpoints, last_checkpoint, log.txt, done.json.")
@click.option("--stage1-workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Work directory of the finished stage-1 run (stage-2 runs only).")
@click.option("--init-workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Work directory of the run named by init_from (default: $LTBENCH_WORK/<init_from>).")
@click.option("--framework", default=None, help="Override the run's framework (torchvision | mmdet | detectron2).")
@click.option("--ranks", type=click.IntRange(min=1), default=1, show_default=True,
              help="Data-parallel ranks (one per GPU; gloo CPU ranks without GPUs). The global batch is the schedule's.")
@click.option("--launcher", type=click.Choice(["torchrun", "srun"]), default="torchrun", show_default=True,
              help="How ranks > 1 start: torchrun on this node, or the job's SLURM tasks (srun).")
@click.option("--nodes", type=click.IntRange(min=1), default=1, show_default=True,
              help="Nodes the srun ranks spread over (ranks / nodes tasks per node).")
@click.option("--device", type=click.Choice(["auto", "cuda", "cpu"]), default=None,
              help="auto (default, $LTBENCH_DEVICE): CUDA when usable, an error at paper scale when not; cpu: debugging.")
@click.option("--precision", type=click.Choice(["auto", "32-true", "16-mixed", "bf16-mixed"]), default=None,
              help="auto (default): fp16 runs train with float16 AMP on CUDA; bf16-mixed: the same AMP path on a CPU.")
@click.option("--retrain", is_flag=True,
              help="WORKDIR holds a finished training: move it aside to WORKDIR.previous-<time> and train from scratch "
                   "(the old one is removed once the new training finishes). An unfinished WORKDIR resumes all the same.")
@data_options
def command(run_config_path: Path, workdir: Path, stage1_workdir: Path | None, init_workdir: Path | None,
            framework: str | None, ranks: int, launcher: str, nodes: int, device: str | None, precision: str | None,
            retrain: bool, **data_kwargs) -> None:
    """Train one run of the plan into WORKDIR.

    A killed run started again with the same arguments continues from WORKDIR/last_checkpoint; a finished one
    (WORKDIR/done.json) is not trained again unless --retrain. One trainer per WORKDIR: this process holds
    WORKDIR/train.lock while it runs, and a second one fails at once naming the holder.
    Progress (iteration, losses, lr, ETA) is printed to stderr and appended to WORKDIR/log.txt.
    """
    from adapters.engine import preemption

    preemption.install(preemption.EARLY_SIGNALS)  # first thing: a time-limit signal during the imports is not lost
    from ltbench.io import read_json
    from ltbench.workflow import workdir as wd

    run_config = read_json(run_config_path)
    if framework:
        run_config = {**run_config, "framework": framework}
    if not wd.holds_lock():  # a rank of our own launcher (which holds the lock and did any --retrain)
        _train(run_config, run_config_path, workdir, stage1_workdir, init_workdir, ranks, launcher, nodes, device,
               precision, **data_kwargs)
        return
    lock = wd.WorkdirLock(workdir).acquire()
    try:
        if retrain and wd.finished(workdir):
            old = lock
            previous = wd.set_aside(workdir)  # the lock file moves with it, still held
            lock = wd.WorkdirLock(workdir).acquire()
            old.release()
            click.echo(f"ltbench train: {workdir} held a finished training; moved it to {previous} and training from "
                       "scratch (it is removed once this training finishes)", err=True)
        elif wd.finished(workdir):
            click.echo(f"ltbench train: {workdir} holds a finished training (done.json): nothing to train "
                       "(--retrain trains it again)", err=True)
        _train(run_config, run_config_path, workdir, stage1_workdir, init_workdir, ranks, launcher, nodes, device,
               precision, **data_kwargs)
        if wd.finished(workdir):
            for gone in wd.remove_previous(workdir):
                click.echo(f"ltbench train: removed {gone} (the new training of {workdir} finished)", err=True)
    finally:
        lock.release()


def _train(run_config: dict, run_config_path: Path, workdir: Path, stage1_workdir: Path | None, init_workdir: Path | None,
           ranks: int, launcher: str, nodes: int, device: str | None, precision: str | None, **data_kwargs) -> None:
    from adapters import get_adapter
    from adapters.engine.launch import inside_launcher, relaunch

    framework = run_config.get("framework", "torchvision")
    if ranks > 1 and not inside_launcher() and (framework != "detectron2" or launcher == "srun"):
        # the ranks are this same command, started by torchrun or srun (detectron2 spawns its own workers)
        argv = _rank_argv(run_config=run_config_path, workdir=workdir, stage1_workdir=stage1_workdir, init_workdir=init_workdir,
                          framework=framework, ranks=ranks, device=device, precision=precision, **data_kwargs)
        code = relaunch(argv, ranks, workdir, launcher, nodes=nodes)
        if code:
            raise SystemExit(code)
        click.echo(str(workdir))
        return
    data = resolve_data(run_config, run_config_path, **data_kwargs)
    adapter = get_adapter(framework)
    final = adapter.train(run_config, workdir, data, stage1_workdir=stage1_workdir, init_workdir=init_workdir,
                          device=device, precision=precision, ranks=ranks)
    click.echo(str(final))


def _rank_argv(**options: object) -> list[str]:
    """``ltbench train`` of one rank: these options (``--ranks`` included: each rank checks the world it joins)."""
    argv = ["train"]
    for name, value in options.items():
        if value is not None:
            argv += [f"--{name.replace('_', '-')}", str(value)]
    return argv
