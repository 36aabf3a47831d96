"""``ltbench explain``: trace one table cell to its YAML row, its run and the code behind it."""

from __future__ import annotations

import json

import click

_OPTIONS = ("--group", "--column", "--where", "--scale", "--framework", "--format", "--no-code")


@click.command(name="explain", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("words", nargs=-1, type=click.UNPROCESSED, metavar="PAPER/TABLE ROW [--ATTR|--no-ATTR ...]")
@click.option("--group", default=None, help="Column group id or label (e.g. v1.0 or 'LVIS v1.0').")
@click.option("--column", default=None, help="Column header as printed (AP_r) or metric key (segm.APr).")
@click.option("--where", "where", multiple=True, metavar="ATTR=VALUE",
              help="Only rows whose attribute column ATTR is VALUE (repeatable; yes/no stand for ✓/✗).")
@click.option("--scale", type=click.Choice(["smoke", "mini", "paper"]), default="smoke", show_default=True)
@click.option("--framework", type=click.Choice(["mmdet", "detectron2", "torchvision"]), default=None,
              help="Override every run's framework (as `ltbench plan --framework`).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--no-code", is_flag=True, help="Skip the code lookup (it imports torch).")
@click.option("--specs-dir", type=click.Path(file_okay=False), default=None, hidden=True)
def command(words, group, column, where, scale, framework, fmt, no_code, specs_dir) -> None:  # noqa: ANN001
    """Trace a table cell to its YAML row, its run and the code behind it.

    \b
    PAPER/TABLE ROW names a row as printed: its label or id, or a printed
    attribute cell (e.g. the Method column). Narrow with --group, --where ATTR=VALUE,
    and for check-mark columns --ATTR / --no-ATTR (--pcb is --where PCB=✓):

    \b
      ltbench explain pcb/2 "Seesaw [34]" --pcb --group v1.0 --column AP_r

    Prints where the row, column and reported value are written (file:line), where
    each key of the row's run and view config comes from (row, YAML anchor/merge,
    column group, table, paper defaults, or scale/planner), the run and view ids at
    --scale with the tables that read the run, and the code behind it.
    """
    from ltbench.errors import LtbenchError
    from ltbench.explain.report import explain, format_text, to_json
    from ltbench.explain.select import parse_where

    flags = [w for w in words if w.startswith("--")]
    positional = [w for w in words if not w.startswith("--")]
    if len(positional) != 2:
        if flags and positional:  # an unknown option with a value (`--colum AP_r`): name the option, not the count
            from ltbench.explain.select import check_flags

            check_flags(positional[0], flags, _OPTIONS, specs_dir)
        raise LtbenchError(f"expected PAPER/TABLE and ROW, got {len(positional)} argument(s): "
                           + " ".join(repr(p) for p in positional) + (f" and {' '.join(flags)}" if flags else ""),
                           key="ARGUMENTS", expected='e.g. ltbench explain pcb/2 "Seesaw [34]" --pcb --group v1.0 --column AP_r',
                           hint="quote a row label with spaces")
    explanation = explain(positional[0], positional[1], group=group, column=column, conditions=parse_where(where),
                          flags=flags, known_options=_OPTIONS, scale=scale, framework=framework, directory=specs_dir,
                          code=not no_code)
    if fmt == "json":
        click.echo(json.dumps(to_json(explanation), indent=1, ensure_ascii=False, default=str))
    else:
        click.echo(format_text(explanation), nl=False)
