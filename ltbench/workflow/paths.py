"""Every path of the workflow, in one place (relative to the working directory, which Snakemake sets to
the repository root). Rules name their files through these functions or ``rules.<name>.output``.

    results/runs/<run>/run.json                 resolved run config (from the plan)
    results/runs/<run>/views/<view>.json        resolved view config
    results/runs/<run>/train.done               small marker: copy of the adapter's done.json
    work/<run>/                                 checkpoints (NEVER a declared output: a failed job's
                                                outputs are deleted, and a resume needs them)
    results/predictions/<run>/<view>/detections.json, proposal_stats.npz (and topk/ for AP-fixed)
    results/metrics/<run>/<view>.json           ltbench evaluate output
    results/records/<run>/<view>.json           the store record (metrics + config + provenance)
    results/data/<scale>/<dataset>.txt          the dataset marker (ltbench data resolve --ensure)
    results/logs/...                            one log per step
"""

from __future__ import annotations

RESULTS = "results"
#: run and view ids: a readable slug plus a short hash (ltbench.plan.canonical)
ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._+=-]*"


def run_json(run_id: str) -> str:
    return f"results/runs/{run_id}/run.json"


def view_json(run_id: str, view_id: str) -> str:
    return f"results/runs/{run_id}/views/{view_id}.json"


def train_done(run_id: str) -> str:
    return f"results/runs/{run_id}/train.done"


def record_file(run_id: str, view_id: str) -> str:
    return f"results/records/{run_id}/{view_id}.json"


def data_marker(scale: str, dataset: str) -> str:
    return f"results/data/{scale}/{dataset}.txt"


def backbone_marker(scale: str, dataset: str) -> str:
    """Mini scale: the marker of the synthetic backbone ``dataset``'s runs start from (``rule backbone``)."""
    from ltbench.data.backbone import BACKBONE_VERSION

    # the version in the path: a new backbone recipe makes the rule run again
    return f"results/data/{scale}/backbone/v{BACKBONE_VERSION}/{dataset}.txt"


def training_inputs(scale: str, dataset: str) -> list[str]:
    """The data a run's training needs: the dataset, and at mini scale its pre-trained synthetic backbone."""
    return [data_marker(scale, dataset)] + ([backbone_marker(scale, dataset)] if scale == "mini" else [])


def predictions_dir(run_id: str, view_id: str) -> str:
    return f"results/predictions/{run_id}/{view_id}"


def metrics_file(run_id: str, view_id: str) -> str:
    return f"results/metrics/{run_id}/{view_id}.json"


def work_dir(work_root: str, run_id: str) -> str:
    return f"{work_root}/{run_id}"


def top_k_dir(run_id: str, view_id: str) -> str:
    """Where the AP-fixed prediction of a (run, view) goes: beside the view's own, in ``topk/``."""
    return f"results/predictions/{run_id}/{view_id}/topk"
