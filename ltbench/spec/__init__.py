"""Paper specs: ``workflows/papers/<paper>.yaml`` loaded, validated, and resolved into runs and views.

>>> from ltbench.spec import load_paper, load_all
>>> spec = load_paper("workflows/papers/pcb.yaml")
>>> row = spec.table("2").rows[0]; spec.row_run(row); spec.row_view(row)
"""

from ltbench.spec.loader import describe_path, load_all, load_paper, validate_spec
from ltbench.spec.model import Cited, Column, ColumnGroup, PaperSpec, Row, Table, merge_run, merge_view

__all__ = [
    "Cited", "Column", "ColumnGroup", "PaperSpec", "Row", "Table", "describe_path", "load_all",
    "load_paper", "merge_run", "merge_view", "validate_spec",
]
