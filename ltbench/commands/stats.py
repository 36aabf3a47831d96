"""``ltbench stats``: dataset statistics of an LVIS-format annotation file (SimCal Table 1)."""

from __future__ import annotations

import click


@click.command("stats")
@click.option("--ann", "ann_path", required=True, type=click.Path(dir_okay=False),
              help="Training annotation JSON (LVIS/COCO format).")
@click.option("--val", "val_path", type=click.Path(dir_okay=False), default=None,
              help="Validation annotation JSON: adds the train-on-val row (categories present in val).")
@click.option("--bins", type=click.Choice(["lvis", "coco-lt"]), default="lvis", show_default=True,
              help="Instance-count bins.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text", show_default=True)
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None,
              help="Write here instead of printing.")
def command(ann_path: str, val_path: str | None, bins: str, fmt: str, out_path: str | None) -> None:
    """Categories per r/c/f split and per training-instance bin, for train and train-on-val."""
    from ltbench.evaluation.stats import dataset_statistics, format_statistics

    text = format_statistics(dataset_statistics(ann_path, val_path, scheme=bins), fmt)
    if out_path is None:
        click.echo(text)
    else:
        from ltbench.io import write_text

        write_text(out_path, text + "\n")
        click.echo(f"wrote {out_path}")
