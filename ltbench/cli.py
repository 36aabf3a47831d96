"""The ``ltbench`` command line.

Subcommands live in ``ltbench/commands/<name>.py``, each exposing a click command called ``command``.
They are imported only when invoked, so ``ltbench --help`` never imports torch, pandas or mmdet; the
one-line help of each subcommand is kept here for the same reason.
"""

from __future__ import annotations

import importlib
import sys

import click

from ltbench import __version__
from ltbench.errors import LtbenchError

# name -> one-line help. The module ltbench.commands.<name> defines `command`.
SUBCOMMANDS: dict[str, str] = {
    "reported": "Every number the papers report, as CSV or Markdown.",
    "plan": "Map table rows onto the smallest set of training runs (and their cost).",
    "data": "Make data: synthetic LVIS, real-LVIS subsets, COCO-LT.",
    "train": "Train one run of the plan into its work directory (resumable).",
    "predict": "Predict a (run, view) on a split into an LVIS detections file.",
    "evaluate": "LVIS metrics of record (bbox/segm, bins, PwB) for a detections file.",
    "stats": "Dataset statistics of an LVIS-format annotation file.",
    "results": "Query the results store.",
    "status": "Where a campaign stands: runs done, running, stalled, failed, pending; cost left; ETA.",
    "render": "Render a paper table (Markdown/LaTeX) with the difference to each reported number.",
    "audit": "Audit report over all tables of all papers.",
    "explain": "Trace a table cell to its YAML row, its run and the code behind it.",
    "step": "One workflow step (train, predict, evaluate) with its marker and failure note.",
    "weights": "Fetch the pretrained weights paper-scale runs start from (ImageNet, COCO), verified.",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in SUBCOMMANDS:
            return None
        module = importlib.import_module(f"ltbench.commands.{cmd_name}")
        return module.command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Static help text: listing the subcommands must not import them.
        with formatter.section("Commands"):
            formatter.write_dl(list(SUBCOMMANDS.items()))


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ltbench")
def cli() -> None:
    """ltbench: does the paper's number hold on today's frameworks?

    Reproduces the result tables of PCB, DisAlign, BAGS and SimCal on LVIS, through torchvision,
    mmdetection or detectron2, and renders each table beside the paper's numbers.
    """


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors print one message and exit 2, never a traceback."""
    try:
        result = cli.main(args=argv, prog_name="ltbench", standalone_mode=False)
    except LtbenchError as exc:
        click.echo(f"ltbench: error: {exc}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    # a command that ends with ctx.exit(n) (e.g. `results` when nothing matches): click returns n here
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


if __name__ == "__main__":
    sys.exit(main())
