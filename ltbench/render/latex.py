"""LaTeX rendering (booktabs) through Jinja2 with LaTeX-safe delimiters.

``\\VAR{...}`` and ``\\BLOCK{...}`` replace ``{{ }}``/``{% %}`` (which collide with TeX braces and
comments); ``StrictUndefined`` turns a missing template variable into an error rather than an empty
cell; every text goes through the ``e`` filter, which escapes TeX's special characters.
"""

from __future__ import annotations

from pathlib import Path

from ltbench.render.markdown import header_and_rows
from ltbench.render.model import BuiltTable

TEMPLATES = Path(__file__).parent / "templates"

_TEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    # Symbols the cells use, as text-mode TeX (no unicode font needed).
    "±": r"$\pm$",
    "✓": r"$\checkmark$",
    "✗": r"$\times$",
    "▲": r"$\blacktriangle$",
    "↓": r"$\downarrow$",
    "↑": r"$\uparrow$",
    "†": r"$\dagger$",
    "↳": r"$\hookrightarrow$",
    "↘": r"$\searrow$",
    "–": "--",
    "…": r"\ldots{}",
}


def tex_escape(value: object) -> str:
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in str(value))


def tex_header(value: object) -> str:
    """A column header: ``AP_r`` -> ``AP$_{r}$``, ``AP^b`` -> ``AP$^{b}$``; everything else escaped."""
    import re

    out = []
    for part in re.split(r"([_^][A-Za-z0-9]+)", str(value)):
        if part[:1] in ("_", "^") and len(part) > 1:
            out.append(f"${part[0]}{{\\mathrm{{{part[1:]}}}}}$")
        else:
            out.append(tex_escape(part))
    return "".join(out)


def environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        block_start_string=r"\BLOCK{",
        block_end_string="}",
        variable_start_string=r"\VAR{",
        variable_end_string="}",
        comment_start_string=r"\#{",
        comment_end_string="}",
        line_statement_prefix=None,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["e"] = tex_escape
    env.filters["header"] = tex_header
    return env


def render_latex(built: BuiltTable) -> str:
    layout = built.layout
    headers, body, _ = header_and_rows(built)
    n_attr = len(layout.attribute_columns) or 1
    groups = []
    col = n_attr + 1
    for group in layout.column_groups:
        width = len(group.columns)
        groups.append({"label": group.label, "width": width, "first": col, "last": col + width - 1})
        col += width
    multi = len(layout.column_groups) > 1
    if multi:  # the group label sits in the spanning header row: keep only the metric name below it
        headers = headers[:n_attr] + [c.header for g in layout.column_groups for c in g.columns]
    return environment().get_template("table.tex.j2").render(
        paper=layout.paper,
        table_id=layout.table_id,
        scale=layout.scale,
        caption=layout.caption,
        colspec="l" * n_attr + "r" * (len(headers) - n_attr),
        multi_group=multi,
        n_attr=n_attr,
        groups=groups,
        headers=headers,
        rows=body,
        summary="Summary: " + built.summary.line()
        + (f". {built.gain_summary.line()}" if built.gain_summary is not None and built.gain_summary.total else ""),
        footnotes=built.footnotes,
    )
