"""Paper tables beside the reproduced numbers: Markdown (tabulate) and LaTeX (Jinja2, booktabs).

``model.build_table(layout, results)`` fills a ``TableLayout`` (the paper's rows and column groups)
with measured values; ``markdown.render_markdown`` / ``latex.render_latex`` print it;
``tables`` builds layouts from the paper specs and the plan, and writes ``tables/*``.
"""
