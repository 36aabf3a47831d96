"""``ltbench reported``: every number the papers report, exactly as printed."""

from __future__ import annotations

import csv
import io

import click

CSV_HEADER = ("paper", "table", "row", "column", "value")


def reported_records(papers: tuple[str, ...] | list[str] | None = None, directory: str | None = None) -> list[dict[str, str]]:
    """One record per reported cell: paper, table, row (readable label incl. column group), column (key), value."""
    from ltbench.spec import load_all

    out = []
    for spec in load_all(directory, list(papers) if papers else None).values():
        for table, row, column, value in spec.cells():
            out.append({"paper": spec.paper, "table": table.id, "row": row.display_label, "column": column.key,
                        "value": value})
    return out


def to_csv(records: list[dict[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_HEADER, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue()


def to_markdown(papers: tuple[str, ...] | list[str] | None = None, directory: str | None = None) -> str:
    """One Markdown table per paper table: rows as labelled, columns as printed, "" where not reported."""
    from tabulate import tabulate

    from ltbench.spec import load_all

    parts = []
    for spec in load_all(directory, list(papers) if papers else None).values():
        parts.append(f"# {spec.paper}: {spec.title}\n")
        for table in spec.tables:
            parts.append(f"## {spec.paper} Table {table.id} ({table.scope})\n\n{table.caption.strip()}\n")
            if table.reason:
                parts.append(f"Out of scope: {table.reason}\n")
            if not table.rows:
                parts.append((table.text or "(no rows)") + "\n")
                continue
            columns = []
            for group in table.column_groups:
                for column in group.columns:
                    prefix = f"{group.label} " if len(table.column_groups) > 1 else ""
                    columns.append((group.id, column.key, f"{prefix}{column.header} [{column.key}]"))
            multi = len(table.column_groups) > 1
            merged: dict[str, list[str]] = {}  # one line per row label, column groups side by side as printed
            notes: dict[str, list[str]] = {}
            for row in table.rows:
                key = row.label if multi else f"{row.label}\x00{row.index}"
                current = merged.setdefault(key, [""] * len(columns))
                cells = [row.reported.get(k, "") if gid == row.group.id else "" for gid, k, _ in columns]
                merged[key] = [a or b for a, b in zip(current, cells)]
                if row.cited:
                    where = f"{row.group.label} " if multi else ""
                    notes.setdefault(key, []).append(f"{where}cited: {row.cited.source}")
            body = [[key.split("\x00")[0] + "".join(f" ({n})" for n in notes.get(key, [])), *cells]
                    for key, cells in merged.items()]
            parts.append(tabulate(body, headers=["row", *[c[2] for c in columns]], tablefmt="pipe",
                                  disable_numparse=True) + "\n")
    return "\n".join(parts)


@click.command(name="reported", help="Every number the papers report, as CSV or Markdown.")
@click.option("--paper", "papers", multiple=True, help="pcb | disalign | bags | simcal (repeatable; default all).")
@click.option("--format", "fmt", type=click.Choice(["csv", "markdown"]), default="csv", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write to FILE (atomically) instead of stdout.")
@click.option("--specs-dir", type=click.Path(file_okay=False), default=None, hidden=True)
def command(papers: tuple[str, ...], fmt: str, out: str | None, specs_dir: str | None) -> None:
    text = to_csv(reported_records(papers, specs_dir)) if fmt == "csv" else to_markdown(papers, specs_dir)
    if out:
        from ltbench.io import write_text

        write_text(out, text)
    else:
        click.echo(text, nl=False)
