"""The audit report: every table of every paper, the status of every cell, provenance, assumptions, plots.

``build_audit(papers, scale, framework)`` gathers it; ``render_markdown`` / ``render_html`` print it.
It renders from whatever the results store holds (all pending before a campaign starts).
"""
