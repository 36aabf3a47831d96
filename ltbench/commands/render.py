"""``ltbench render``: a paper table (Markdown + LaTeX) beside the reproduced numbers."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(name="render")
@click.option("--paper", required=True, type=click.Choice(["pcb", "disalign", "bags", "simcal"]))
@click.option("--table", "table_id", default=None, help="Table number as printed (e.g. 2).")
@click.option("--all-tables", is_flag=True, help="Every reproduced table of the paper into one Markdown file.")
@click.option("--scale", type=click.Choice(["smoke", "mini", "paper"]), default="smoke", show_default=True)
@click.option("--framework", type=click.Choice(["torchvision", "mmdet", "detectron2"]), default=None)
@click.option("--seeds", type=click.IntRange(min=1), default=None,
              help="N seeds for every row (overrides the specs' seeds; the workflow's `seeds` config).")
@click.option("--sensitivity", is_flag=True,
              help="With --table: the table's methods through several frameworks side by side (gain per framework).")
@click.option("--frameworks", default=None, metavar="FW,FW",
              help="With --sensitivity: frameworks to compare (default torchvision,mmdet at smoke, mmdet,detectron2 at paper).")
@click.option("--claim", "claim_id", default=None,
              help="With --sensitivity: the compare claim whose (method, baseline) pairs give the rows (default: the table's first).")
@click.option("--metric", "metrics", multiple=True,
              help="With --sensitivity: metric keys to compare (repeatable; default: the claim's metrics).")
@click.option("--md", "md_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Markdown output (default tables/<paper>_table<N>.md, or tables/<paper>.md with --all-tables).")
@click.option("--tex", "tex_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="LaTeX output (default next to the Markdown, .tex).")
@click.option("--results-dir", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--print/--no-print", "show", default=False, help="Also print the Markdown.")
def command(paper, table_id, all_tables, scale, framework, seeds, sensitivity, frameworks, claim_id, metrics, md_path,
            tex_path, results_dir, show) -> None:
    """Render a paper table with the difference to each reported number.

    Renders with whatever the results store holds: cells without a result say pending (or failed,
    with the reason), so a table can be rendered before a campaign starts.
    """
    from ltbench import paths
    from ltbench.errors import LtbenchError
    from ltbench.render.tables import write_paper, write_table

    if all_tables == (table_id is not None):
        raise LtbenchError("give exactly one of --table N and --all-tables", key="--table")
    if sensitivity:
        from ltbench.analysis.sensitivity import write_sensitivity

        if table_id is None or framework is not None:
            raise LtbenchError("--sensitivity renders one table (--table N) through --frameworks, not --framework",
                               key="--sensitivity", expected="--table N --sensitivity --frameworks torchvision,mmdet")
        md = md_path or paths.TABLES_DIR / f"{paper}_table{table_id}_sensitivity.md"
        text = write_sensitivity(paper, table_id, md=md, frameworks=frameworks, scale=scale, seeds=seeds,
                                 claim_id=claim_id, metrics=list(metrics) or None, results_dir=results_dir)
        click.echo(f"{md}: framework sensitivity of {paper} table {table_id}")
        if show:
            click.echo(text)
        return
    if frameworks is not None or claim_id is not None or metrics:
        raise LtbenchError("--frameworks, --claim and --metric go with --sensitivity", key="--frameworks")
    if all_tables:
        md = md_path or paths.TABLES_DIR / f"{paper}.md"
        out = write_paper(paper, md=md, scale=scale, framework=framework, results_dir=results_dir, seeds=seeds)
        click.echo(f"{md}: {len(out)} tables")
        if show:
            click.echo(md.read_text(encoding="utf-8"))
        return
    md = md_path or paths.TABLES_DIR / f"{paper}_table{table_id}.md"
    tex = tex_path or md.with_suffix(".tex")
    rendered = write_table(paper, table_id, md=md, tex=tex, scale=scale, framework=framework, results_dir=results_dir,
                           seeds=seeds)
    click.echo(f"{md}, {tex}: {rendered.built.summary.line()}")
    if show:
        click.echo(rendered.markdown)
