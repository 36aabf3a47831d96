"""``ltbench status``: where a campaign stands, per table and per run (``ltbench.report.status``)."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command(name="status")
@click.option("--paper", "papers", multiple=True, type=click.Choice(["pcb", "disalign", "bags", "simcal"]),
              help="Repeat for several papers (default: all four, as the `audit` target).")
@click.option("--table", default=None, help="One table of the one --paper (e.g. 2).")
@click.option("--scale", type=click.Choice(["auto", "smoke", "mini", "paper"]), default="auto", show_default=True,
              help="auto: the scale whose runs the results and work directories hold.")
@click.option("--framework", type=click.Choice(["torchvision", "mmdet", "detectron2"]), default=None,
              help="The workflow's `framework` override, if the campaign used one.")
@click.option("--seeds", type=click.IntRange(min=1), default=None, help="The workflow's `seeds` override, if any.")
@click.option("--results-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Results directory (default: <repo>/results).")
@click.option("--work-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Training work directories (default: $LTBENCH_WORK or <repo>/work).")
@click.option("--stale-after", type=click.FloatRange(min=1), default=None,
              help="Seconds without a log write after which a training run counts as stalled "
                   "(default: 5 min, or 5 progress-line intervals if longer).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--max-done", type=click.IntRange(min=0), default=None,
              help="Text: list at most this many done runs (default: all).")
def command(papers, table, scale, framework, seeds, results_dir, work_dir, stale_after, fmt, max_done) -> None:
    """Per table and per run: done, running (iteration, loss, ETA), stalled, failed (why), pending; the
    campaign's GPU-hours (paper scale) or CPU-hours (smoke) spent and left, and its ETA."""
    from ltbench.report.status import campaign_status
    from ltbench.report.status_model import status_text

    status = campaign_status(papers=list(papers) or None, table=table, scale=None if scale == "auto" else scale,
                             framework=framework, seeds=seeds, results_dir=results_dir, work_dir=work_dir,
                             stale_after=stale_after)
    if fmt == "json":
        click.echo(json.dumps(status.to_json(), indent=1, ensure_ascii=False))
    else:
        click.echo(status_text(status, max_done=max_done), nl=False)
