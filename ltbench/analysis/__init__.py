"""Analysis across runs: seed statistics (``seeds``: mean ± std, prediction intervals, the seed-based verdict
of a cell, differences of means) and framework sensitivity (``sensitivity``: a table's gains through several
frameworks, and its rendered table)."""
