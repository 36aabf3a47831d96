"""``ltbench render``: a paper table (Markdown + LaTeX) beside the reproduced numbers."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(name="render")
@click.option("--paper", required=True, type=click.Choice(["pcb", "disalign", "bags", "simcal"]))
@click.option("--table", "table_id", default=None, help="Table number as printed (e.g. 2).")
@click.option("--all-tables", is_flag=True, help="Every reproduced table of the paper into one Markdown file.")
@click.option("--scale", type=click.Choice(["smoke", "paper"]), default="smoke", show_default=True)
@click.option("--framework", type=click.Choice(["torchvision", "mmdet", "detectron2"]), default=None)
@click.option("--seeds", type=click.IntRange(min=1), default=None,
              help="N seeds for every row (overrides the specs' seeds; the workflow's `seeds` config).")
@click.option("--md", "md_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Markdown output (default tables/<paper>_table<N>.md, or tables/<paper>.md with --all-tables).")
@click.option("--tex", "tex_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="LaTeX output (default next to the Markdown, .tex).")
@click.option("--results-dir", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--print/--no-print", "show", default=False, help="Also print the Markdown.")
def command(paper, table_id, all_tables, scale, framework, seeds, md_path, tex_path, results_dir, show) -> None:
    """Render a paper table with the difference to each reported number.

    Renders with whatever the results store holds: cells without a result say pending (or failed,
    with the reason), so a table can be rendered before a campaign starts.
    """
    from ltbench import paths
    from ltbench.errors import LtbenchError
    from ltbench.render.tables import write_paper, write_table

    if all_tables == (table_id is not None):
        raise LtbenchError("give exactly one of --table N and --all-tables", key="--table")
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
