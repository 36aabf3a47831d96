"""``ltbench audit``: every table of every paper, cell status, provenance, assumptions and plots."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(name="audit")
@click.option("--paper", "papers", multiple=True, type=click.Choice(["pcb", "disalign", "bags", "simcal"]),
              help="Repeat for several papers (default: all four).")
@click.option("--scale", type=click.Choice(["smoke", "mini", "paper"]), default="smoke", show_default=True)
@click.option("--framework", type=click.Choice(["torchvision", "mmdet", "detectron2"]), default=None)
@click.option("--seeds", type=click.IntRange(min=1), default=None,
              help="N seeds for every row (overrides the specs' seeds; the workflow's `seeds` config).")
@click.option("--md", "md_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Markdown output (default tables/audit.md; plots go to plots/ beside it).")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="HTML output (default: the Markdown path with .html).")
@click.option("--site", "site_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The report site's folder (default: site/ beside the Markdown): one page per table, plots, downloads.")
@click.option("--results-dir", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--work-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Training work directories, for the campaign status (default: $LTBENCH_WORK or <repo>/work).")
def command(papers, scale, framework, seeds, md_path, html_path, site_dir, results_dir, work_dir) -> None:
    """Audit report over all tables of all papers (renders with zero results: all pending): compact Markdown, the
    report site, and its index as HTML."""
    from ltbench import paths
    from ltbench.audit.report import write_audit

    md = md_path or paths.TABLES_DIR / "audit.md"
    html = html_path or md.with_suffix(".html")
    audit = write_audit(list(papers) or ["pcb", "disalign", "bags", "simcal"], md=md, html=html, scale=scale,
                        framework=framework, results_dir=results_dir, seeds=seeds, site_dir=site_dir, work_dir=work_dir)
    c = audit.status_counts()
    site = site_dir or md.parent / "site"
    click.echo(f"{md}, {html}, {site}/: {len(audit.tables)} tables, {c['reproduced']}/{c['total']} cells reproduced, "
               f"{c['within']} within tolerance, {sum(len(p['plots']) for p in audit.plots)} table plots")
