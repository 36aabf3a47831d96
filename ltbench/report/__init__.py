"""Views of a campaign for people: its status while it runs (``status``) and the static report site (``site``).

Both read only what the workflow writes (the plan, ``results/`` and ``work/``), so they work without
Snakemake, on a half-finished campaign, and on a copy of someone else's results directory.
"""
