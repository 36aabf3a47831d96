"""``ltbench plan``: map table rows onto the smallest set of training runs, with their cost."""

from __future__ import annotations

import json

import click


def plan_text(plan) -> str:  # noqa: ANN001 (ltbench.plan.Plan; imported lazily)
    c = plan.counts()
    used: dict[str, int] = {}
    for run in plan.runs.values():
        used[run.config["framework"]] = used.get(run.config["framework"], 0) + 1
    fw = plan.framework or ("per paper" if plan.scale == "paper" else "torchvision")
    if plan.scale != "paper" and set(used) - {plan.framework or "torchvision"}:  # rows another framework serves
        fw += " (runs: " + ", ".join(f"{name} {n}" for name, n in sorted(used.items())) + ")"
    cost = f"{plan.gpu_hours} GPU-hours" if plan.scale == "paper" else f"{plan.cpu_hours} CPU-hours"
    lines = [
        f"plan: {', '.join(plan.papers) or '(nothing)'}  scale={plan.scale}  framework={fw}"
        + (f"  seeds={plan.seeds} per row" if getattr(plan, "seeds", None) else ""),
        f"rows {c['rows']}: cited {c['cited_rows']} (reproduced {c['reproduced_cited_rows']}, served "
        f"{c['served_cited_rows']}, reported only "
        f"{c['reported_only_rows']}), not planned {c['not_planned_rows']}",
        f"runs {c['runs']} (stage-2 {c['stage2_runs']}), views {c['views']}, estimated {cost}",
        "",
        "tables (runs needed, cost of that table alone):",
    ]
    for ref, entry in plan.tables_index().items():
        hours = f"{entry['gpu_hours']} GPU-h" if plan.scale == "paper" else f"{round(entry['cpu_hours'] * 60, 1)} CPU-min"
        lines.append(f"  {ref:14s} {len(entry['runs']):3d} runs  {len(entry['views']):3d} views  {hours}")
    if plan.scale == "paper":
        from ltbench.plan.cost import dataset_note

        lines += ["", "dataset sizes in the cost model:"]
        lines += [f"  {d}: {dataset_note(d)}" for d in sorted({r.config["dataset"] for r in plan.runs.values()})]
    lines += ["", "runs:"]
    for run in plan.runs.values():
        hours = f"{run.gpu_hours:8.1f} GPU-h" if plan.scale == "paper" else f"{run.cpu_hours * 60:6.1f} CPU-min"
        after = (f"  after {run.stage1}" if run.stage1 else "") + (f"  init from {run.init_from}" if run.init_from else "")
        lines.append(f"  {run.id:60s} {hours}  {len(run.cells):2d} rows  {' '.join(run.tables)}{after}")
    shared = plan.shared_runs()
    if shared:
        lines += ["", "runs shared by more than one table:"]
        for run in shared:
            uses = sorted({f"{c['paper']} T{c['table']} {c['row']!r} [{c['view']}]" for c in run.cells})
            lines.append(f"  {run.id}:")
            lines += [f"    {u}" for u in uses]
    reproduced = [r for r in plan.rows if r.status == "planned" and r.cited]
    if reproduced:
        lines += ["", "cited rows reproduced with the citing paper's recipe (still marked cited):"]
        lines += [f"  {r.paper} T{r.table} {r.label!r} -> {' '.join(r.run_ids)}" for r in reproduced]
    other = [r for r in plan.rows if r.status not in ("planned",)]
    if other:
        lines += ["", "rows without their own run:"]
        for row in other:
            detail = f" <- {row.served_by}" if row.served_by else f": {row.reason}"
            lines.append(f"  {row.paper} T{row.table} {row.label!r} {row.status}{detail}")
    return "\n".join(lines) + "\n"


@click.command(name="plan", help="Map table rows onto the smallest set of training runs (and their cost).")
@click.argument("targets", nargs=-1)
@click.option("--paper", "papers", multiple=True, help="Plan whole papers (repeatable).")
@click.option("--all", "all_papers", is_flag=True, help="Plan every paper (the default without targets).")
@click.option("--scale", type=click.Choice(["smoke", "mini", "paper"]), default="smoke", show_default=True)
@click.option("--framework", type=click.Choice(["mmdet", "detectron2", "torchvision"]), default=None,
              help="Override every run's framework (smoke scale: every run whose detector its adapter builds).")
@click.option("--seeds", type=click.IntRange(min=1), default=None,
              help="N seeds for every row (overrides the specs' seeds; the workflow's `seeds` config).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write to FILE (atomically).")
@click.option("--emit-run", "emit_run", metavar="RUN_ID", default=None,
              help="Write the resolved config of RUN_ID (to --out) for `ltbench train --run-config`.")
@click.option("--emit-view", "emit_view", nargs=2, metavar="RUN_ID VIEW_ID", default=None,
              help="Write the view config (to --out) for `ltbench predict --view-config`.")
@click.option("--specs-dir", type=click.Path(file_okay=False), default=None, hidden=True)
def command(targets, papers, all_papers, scale, framework, seeds, fmt, out, emit_run, emit_view, specs_dir) -> None:  # noqa: ANN001
    from ltbench.errors import LtbenchError
    from ltbench.io import write_json, write_text
    from ltbench.plan import build_plan

    if all_papers and (targets or papers):
        raise LtbenchError("--all plans every paper; do not combine it with targets or --paper", key="--all")
    plan = build_plan(list(targets) or None, list(papers) or None, scale=scale, framework=framework,
                      directory=specs_dir, seeds=seeds)
    if emit_run or emit_view:
        if not out:
            raise LtbenchError("--emit-run/--emit-view need --out FILE", key="--out", expected="a JSON file path")
        obj = plan.run(emit_run).config if emit_run else plan.view(*emit_view).view_config
        write_json(out, obj)
        return
    text = json.dumps(plan.to_json(), indent=1, ensure_ascii=False) + "\n" if fmt == "json" else plan_text(plan)
    if out:
        write_text(out, text)
    else:
        click.echo(text, nl=False)
