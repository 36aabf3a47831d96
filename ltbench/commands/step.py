"""``ltbench step train|predict|evaluate``: one workflow step per command (``ltbench.workflow.steps``)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

RESULTS = click.option("--results-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                       help="Where failure notes go (default: $LTBENCH_RESULTS, else <repo>/results).")
LOG = click.option("--log", "log_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
                   help="The step's own log (its stdout/stderr): a failure note quotes its telling line.")
THREADS = click.option("--threads", type=int, default=None, help="CPU threads of this step (the rule's threads).")


@click.group(name="step")
def command() -> None:
    """Workflow steps: write the resolved config, run the stage, write the marker; a failure writes a note."""


@command.command("train")
@click.option("--run", "run_id", required=True)
@click.option("--config-json", required=True, help="The run's resolved config (the workflow's plan).")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--stage1-workdir", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--init-workdir", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--out-run", type=click.Path(dir_okay=False, path_type=Path), required=True, help="results/runs/<run>/run.json")
@click.option("--out-done", type=click.Path(dir_okay=False, path_type=Path), required=True, help="results/runs/<run>/train.done")
@click.option("--ranks", type=click.IntRange(min=1), default=1, show_default=True, help="ltbench train --ranks")
@click.option("--launcher", type=click.Choice(["torchrun", "srun"]), default="torchrun", show_default=True, help="ltbench train --launcher")
@click.option("--nodes", type=click.IntRange(min=1), default=1, show_default=True, help="ltbench train --nodes")
@THREADS
@LOG
@RESULTS
def train(run_id, config_json, workdir, stage1_workdir, init_workdir, out_run, out_done, ranks, launcher, nodes, threads, log_path,
          results_dir) -> None:
    """Emit the run config, train it (resuming an unfinished work directory, training a finished one again:
    ltbench.workflow.workdir), write train.done; exit 75 when the training checkpointed on the time-limit signal
    (the job is to be resubmitted)."""
    from adapters.engine import preemption

    preemption.install(preemption.EARLY_SIGNALS)  # first thing: a time-limit signal during the imports counts
    from ltbench.store.provenance import utc_now
    from ltbench.workflow import steps

    steps.limit_threads(threads)
    started = utc_now()

    def body() -> None:
        steps.emit_config(config_json, run_id, out_run)
        # Snakemake runs this job because train.done is missing or out of date (and deleted it): a finished work
        # directory is trained again when the user forced the job or a parent run was trained after it, else marked
        decision = steps.begin_training(run_id, workdir, out_done, (stage1_workdir, init_workdir))
        if decision.action != "mark":
            argv = ["train", "--run-config", str(out_run), "--workdir", str(workdir), "--ranks", str(ranks), "--launcher",
                    launcher, "--nodes", str(nodes)]
            if stage1_workdir:
                argv += ["--stage1-workdir", str(stage1_workdir)]
            if init_workdir:
                argv += ["--init-workdir", str(init_workdir)]
            if decision.action == "retrain":
                argv.append("--retrain")
            steps.run_ltbench(argv)
        steps.mark_trained(run_id, workdir, started, out_done)

    sys.exit(steps.guarded("train", run_id, None, log_path, results_dir, body))


@command.command("predict")
@click.option("--run", "run_id", required=True)
@click.option("--view", "view_id", required=True, help="The view id the emitted view config carries.")
@click.option("--config-json", required=True, help="The view's resolved config (the workflow's plan).")
@click.option("--run-config", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--out-view", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--failure-view", default=None, help="The view the failure note names (default: --view).")
@THREADS
@LOG
@RESULTS
def predict(run_id, view_id, config_json, run_config, workdir, out_view, out_dir, failure_view, threads, log_path, results_dir) -> None:
    """Emit the view config and predict it on the val split (detections.json, proposal_stats.npz)."""
    from ltbench.workflow import steps

    steps.limit_threads(threads)

    def body() -> None:
        steps.emit_config(config_json, view_id, out_view)
        steps.run_ltbench(["predict", "--run-config", str(run_config), "--view-config", str(out_view), "--workdir", str(workdir),
                           "--split", "val", "--out-dir", str(out_dir)])

    sys.exit(steps.guarded("predict", run_id, failure_view or view_id, log_path, results_dir, body))


@command.command("evaluate", context_settings={"ignore_unknown_options": True})
@click.option("--run", "run_id", required=True)
@click.option("--view", "view_id", required=True)
@THREADS
@LOG
@RESULTS
@click.argument("evaluate_args", nargs=-1, type=click.UNPROCESSED)
def evaluate(run_id, view_id, threads, log_path, results_dir, evaluate_args) -> None:
    """``ltbench evaluate EVALUATE_ARGS...`` for a (run, view), with a failure note when it fails."""
    from ltbench.workflow import steps

    steps.limit_threads(threads)
    sys.exit(steps.guarded("evaluate", run_id, view_id, log_path, results_dir,
                           lambda: steps.run_ltbench(["evaluate", *evaluate_args])))
