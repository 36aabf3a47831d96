"""The audit report: every table of every paper, the status of every cell, provenance, assumptions, plots.

``build_audit(papers, scale, framework)`` gathers it; ``render_markdown`` prints the compact Markdown and
``ltbench.report.site`` the static site (``write_audit`` writes both).
It renders from whatever the results store holds (all pending before a campaign starts).
"""
