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
@data_options
def command(run_config_path: Path, workdir: Path, stage1_workdir: Path | None, init_workdir: Path | None,
            framework: str | None, **data_kwargs) -> None:
    """Train one run of the plan into WORKDIR.

    A killed run started again with the same arguments continues from WORKDIR/last_checkpoint.
    Progress (iteration, losses, lr, ETA) is printed to stderr and appended to WORKDIR/log.txt.
    """
    from adapters.engine import preemption

    preemption.install(preemption.EARLY_SIGNALS)  # first thing: a time-limit signal during the imports is not lost
    from adapters import get_adapter
    from ltbench.io import read_json

    run_config = read_json(run_config_path)
    if framework:
        run_config = {**run_config, "framework": framework}
    data = resolve_data(run_config, run_config_path, **data_kwargs)
    adapter = get_adapter(run_config.get("framework", "torchvision"))
    final = adapter.train(run_config, workdir, data, stage1_workdir=stage1_workdir, init_workdir=init_workdir)
    click.echo(str(final))
