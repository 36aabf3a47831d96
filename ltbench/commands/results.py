"""``ltbench results``: query the results store; the workflow's store steps are subcommands.

    ltbench results [--run ID] [--paper P [--table N]] [--columns C,...] [--format markdown|csv|json]   query
    ltbench results emit --run ID [--view V] --scale S [--framework F] --out FILE    plan -> config JSON
    ltbench results done --run ID --workdir DIR --out FILE                          training marker
    ltbench results fail --run ID [--view V] --stage STAGE --log FILE               failure note
    ltbench results record --run-config R --view-config V --metrics M --out FILE     one record
    ltbench results collect [--paper P --table N] --out FILE.parquet                 aggregate
    ltbench results regression --expected FILE --out FILE                            CI check
    ltbench results regression-expected --scale mini --seeds 3 --task T --metric M [--measured F --label L] --out FILE
"""

from __future__ import annotations

from pathlib import Path

import click

SCALE = click.option("--scale", type=click.Choice(["smoke", "mini", "paper"]), default="smoke", show_default=True)
FRAMEWORK = click.option("--framework", type=click.Choice(["torchvision", "mmdet", "detectron2"]), default=None,
                         help="Override every run's framework (as the workflow's `framework` config).")
SEEDS = click.option("--seeds", type=click.IntRange(min=1), default=None,
                     help="N seeds for every row (as the workflow's `seeds` config; default: the specs').")
RESULTS = click.option("--results-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                       help="Results directory (default: <repo>/results).")


@click.group(name="results", invoke_without_command=True)
@click.option("--run", "run_id", default=None, help="A run id, or its readable prefix.")
@click.option("--paper", default=None, help="Only the (run, view) pairs of that paper's tables (or, with --table, of one).")
@click.option("--table", default=None, help="One table of --paper, e.g. 2.")
@click.option("--columns", default=None,
              help="Comma-separated columns to show, in order; patterns allowed (segm.AP*). Wide: run_id, view_id, "
                   "seed, the metric keys, and the per-record columns (framework, host, wall_time_s, ...). "
                   "run_id, view_id, seed lead unless you name one of them.")
@click.option("--format", "fmt", type=click.Choice(["markdown", "csv", "json"]), default="markdown", show_default=True)
@click.option("--wide/--long", default=True, show_default=True, help="One column per metric, or one row per metric.")
@SCALE
@FRAMEWORK
@SEEDS
@RESULTS
@click.pass_context
def command(ctx: click.Context, run_id, paper, table, columns, fmt, wide, scale, framework, seeds, results_dir) -> None:
    """Query the results store (aggregated from results/records, cached in results/metrics.parquet).

    Exits 1 with a message on stderr when nothing matches."""
    if ctx.invoked_subcommand is not None:
        return
    from ltbench.errors import LtbenchError
    from ltbench.store.aggregate import load_frame, query, select_columns
    from ltbench.store.aggregate import wide as to_wide

    if table is not None and paper is None:
        raise LtbenchError("--table needs --paper", key="--table", expected="--paper P --table N")
    frame, loaded = load_frame(results_dir)
    if loaded is not None:
        for bad in loaded.corrupt:
            click.echo(f"warning: skipped corrupt record {bad}", err=True)
    pairs = None
    if paper is not None:
        from ltbench.workflow import WorkflowPlan

        plan = WorkflowPlan.build(scale=scale, framework=framework, papers=[paper], seeds=seeds)
        pairs = set(plan.table_pairs(paper, table) if table is not None else plan.paper_pairs(paper))
    out = query(frame, run_id=run_id, pairs=pairs)
    if out.empty:
        where = [f"run {run_id!r}"] if run_id else []
        if paper:
            where.append(f"{paper} table {table}" if table else f"any table of {paper}")
        total = frame[["run_id", "view_id"]].drop_duplicates().shape[0]
        click.echo(f"ltbench results: no results for {' in '.join(where) or 'the query'} ({scale} scale) among "
                   f"{total} record(s) in {results_dir or 'results'}", err=True)
        ctx.exit(1)
    shown = to_wide(out).reset_index() if wide and fmt != "json" else out
    shown = select_columns(shown, columns, long=out if wide and fmt != "json" else None)
    if fmt == "json":
        click.echo(shown.to_json(orient="records", indent=1))
        return
    if fmt == "csv":
        click.echo(shown.to_csv(index=False), nl=False)
    else:
        from tabulate import tabulate

        click.echo(tabulate(shown, headers="keys", tablefmt="pipe", showindex=False, floatfmt=".2f"))


@command.command("emit")
@click.option("--run", "run_id", required=True)
@click.option("--view", "view_id", default=None, help="Emit this view's config instead of the run's.")
@click.option("--config-json", default=None,
              help="The config itself (the workflow passes the plan it built its DAG from); else re-plan.")
@SCALE
@FRAMEWORK
@SEEDS
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def emit(run_id, view_id, config_json, scale, framework, seeds, out) -> None:
    """Write a resolved run (or view) config of the plan as JSON (atomic)."""
    import json

    from ltbench.workflow.steps import emit_config

    if config_json is None:
        from ltbench.workflow import WorkflowPlan

        plan = WorkflowPlan.build(scale=scale, framework=framework, seeds=seeds)
        config_json = json.dumps(plan.view(run_id, view_id) if view_id else plan.run(run_id).config)
    emit_config(config_json, view_id or run_id, out)
    click.echo(f"{out}")


@command.command("done")
@click.option("--run", "run_id", required=True)
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--started", default=None, help="ISO-8601 UTC time the training job started (for provenance).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def done(run_id, workdir, started, out) -> None:
    """Copy the adapter's WORKDIR/done.json to the workflow's small training marker (+ job timing)."""
    from ltbench.store.provenance import utc_now
    from ltbench.workflow.steps import mark_trained

    mark_trained(run_id, workdir, started or utc_now(), out)


@command.command("fail")
@click.option("--run", "run_id", required=True)
@click.option("--view", "view_id", default=None)
@click.option("--stage", type=click.Choice(["train", "predict", "evaluate", "record"]), required=True)
@click.option("--log", "log_path", type=click.Path(dir_okay=False, path_type=Path), required=True)
@RESULTS
def fail(run_id, view_id, stage, log_path, results_dir) -> None:
    """Write a failure note (the reason is read from the failed step's log)."""
    from ltbench.store.records import reason_from_log, write_failure

    path = write_failure(run_id, stage, reason_from_log(log_path), view_id=view_id, log_path=log_path, results_dir=results_dir)
    click.echo(str(path), err=True)


@command.command("record")
@click.option("--run-config", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--view-config", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--metrics", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--train-done", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Must be results/records/<run>/<view>.json under the results dir (checked).")
@RESULTS
def record(run_config, view_config, metrics, train_done, out, results_dir) -> None:
    """Write one store record: metrics, resolved config + hash, provenance."""
    from ltbench.errors import LtbenchError
    from ltbench.io import read_json
    from ltbench.store.records import clear_failures, make_record, write_record

    if results_dir is None and out is not None:
        results_dir = out.parent.parent.parent  # results/records/<run>/<view>.json
    train = read_json(train_done) if train_done is not None else None
    rec = make_record(
        read_json(run_config),
        read_json(view_config),
        read_json(metrics),
        train_summary=train,
        started=(train or {}).get("started"),
        ended=(train or {}).get("ended") or (train or {}).get("finished"),
        wall_time_s=(train or {}).get("wall_time_s") or (train or {}).get("seconds"),
    )
    path = write_record(rec, results_dir)
    if out is not None and path.resolve() != out.resolve():
        raise LtbenchError(f"record written to {path}, not to --out {out}", expected="--out results/records/<run>/<view>.json")
    clear_failures(rec["run_id"], rec["view_id"], results_dir)
    click.echo(str(path))


@command.command("collect")
@click.option("--paper", default=None)
@click.option("--table", default=None)
@SCALE
@FRAMEWORK
@SEEDS
@RESULTS
@click.option("--strict", is_flag=True,
              help="Fail (exit 1), naming each file, when a record of the collected pairs is corrupt (the workflow's).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def collect(paper, table, scale, framework, seeds, results_dir, strict, out) -> None:
    """Aggregate records (all, or one table's) into a parquet file; also refresh results/metrics.parquet."""
    from ltbench import io
    from ltbench.errors import LtbenchError
    from ltbench.store.aggregate import query, to_frame, write_parquet

    full, loaded = write_parquet(results_dir)
    for bad in loaded.corrupt:
        click.echo(f"warning: skipped corrupt record {bad}", err=True)
    frame = to_frame(loaded)
    pairs = None
    if paper is not None and table is not None:
        from ltbench.workflow import WorkflowPlan

        plan = WorkflowPlan.build(scale=scale, framework=framework, papers=[paper], seeds=seeds)
        pairs = set(plan.table_pairs(paper, table))
        frame = query(frame, pairs=pairs)
    bad = [c for c in loaded.corrupt if pairs is None or (c.path.parent.name, c.path.stem) in pairs]
    if strict and bad:
        raise LtbenchError(f"{len(bad)} corrupt record(s): " + "; ".join(map(str, bad)), path=bad[0].path,
                           expected="records written by `ltbench results record`",
                           hint="run the workflow again: it makes a corrupt record again (or delete the file, or "
                                f"snakemake --forcerun {bad[0].path} -- <target>)")
    if out.resolve() != full.resolve():
        with io.atomic_open(out, "wb") as handle:
            frame.to_parquet(handle, index=False)
    click.echo(f"{out}: {frame[['run_id', 'view_id']].drop_duplicates().shape[0]} records, {len(frame)} metric values")


@command.command("regression")
@click.option("--expected", type=click.Path(dir_okay=False, path_type=Path), required=True)
@SCALE
@FRAMEWORK
@RESULTS
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def regression(expected, scale, framework, results_dir, out) -> None:
    """Check smoke metrics against [task, metric, expected, tolerance] entries; exit 1 on any miss."""
    from ltbench.io import write_text
    from ltbench.store.regression import check, load_expected, load_measured, machines_line, this_machine

    report = check(load_expected(expected), scale=scale, framework=framework, results_dir=results_dir)
    # which machine measured, against which machines the expected values come from: another CPU trains another
    # mini backbone, the first thing to look at when an entry fails on a new machine
    measured = load_measured(expected.parent / "measured.yaml")
    report.context = machines_line(this_machine(scale), measured)
    text = report.markdown()
    click.echo(text)
    if not report.ok:
        raise SystemExit(1)
    write_text(out, text)


@command.command("regression-expected")
@SCALE
@FRAMEWORK
@SEEDS
@RESULTS
@click.option("--task", "tasks", multiple=True, required=True, help="A row, <paper>/table<N>/<group>/<row id> (repeat).")
@click.option("--metric", "metrics", multiple=True, required=True,
              help="A metric key checked on every task, e.g. segm.APr, or <task>:<key> for one task (repeat).")
@click.option("--k", type=click.FloatRange(min=0), default=None,
              help="Tolerance = max(k x max(the entry's seed std, the metric's pooled over the tasks), floor) (default 3).")
@click.option("--floor", type=click.FloatRange(min=0), default=None, help="Smallest tolerance (default 1.0).")
@click.option("--note", default="", help="A header comment: how and where the seeds were measured.")
@click.option("--measured", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The per-machine record of seeds (workflows/regression/measured.yaml): this store's values go into it "
                   "under --label (replacing that label's), and the entries come from every machine in it.")
@click.option("--label", default=None, help="With --measured: this machine's name in it.")
@click.option("--machine-note", default="", help="With --measured: a note on this machine's measurements.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def regression_expected(scale, framework, seeds, results_dir, tasks, metrics, k, floor, note, measured, label, machine_note,
                        out) -> None:
    """Write the regression check's expected values from the seeds in the store (mean; tolerance from their spread),
    pooled with other machines' seeds when --measured names their record."""
    from ltbench.io import write_text
    from ltbench.store.regression import (SPREAD_K, TOLERANCE_FLOOR, Machine, derive_entries, derived_yaml, load_measured,
                                          measured_values, measured_yaml, pooled_values, select_metrics, this_machine,
                                          with_machine)

    if (measured is None) != (label is None):
        raise click.UsageError("--measured and --label go together")
    k = SPREAD_K if k is None else k
    floor = TOLERANCE_FLOOR if floor is None else floor
    values = measured_values(list(tasks), scale=scale, framework=framework, seeds=seeds, results_dir=results_dir)
    machines = None
    if measured is not None:
        about = this_machine(scale)
        if machine_note:
            about["note"] = machine_note
        machines = with_machine(load_measured(measured, scale=scale), Machine(label, about, select_metrics(values, list(metrics))))
        write_text(measured, measured_yaml(machines, scale=scale, framework=framework,
                                           header="The seeds behind expected.yaml, one block per machine (ltbench results "
                                                  "regression-expected --measured)."))
        values = pooled_values(machines)
    derived = derive_entries(values, list(metrics), k=k, floor=floor)
    text = derived_yaml(derived, scale=scale, framework=framework, header=note, k=k, floor=floor, machines=machines)
    write_text(out, text)
    click.echo(text)
