"""The package side of the Snakemake workflow: the plan seen from the rules (``plan``), every path
(``paths``), SLURM resources (``resources``) and the one-line step commands (``ltbench step``).

``from ltbench import workflow as wf`` gives the names the rules use.
"""

from ltbench.workflow.paths import (
    ID_PATTERN,
    backbone_marker,
    data_marker,
    training_inputs,
    metrics_file,
    predictions_dir,
    record_file,
    run_json,
    top_k_dir,
    train_done,
    view_json,
    work_dir,
)
from ltbench.workflow.plan import (
    PAPERS,
    RowServe,
    RunInfo,
    WorkflowPlan,
    ap_fixed_k,
    evaluate_ap_fixed_args,
    export_extra_columns,
    export_results_dir,
    parent_workdir_args,
    parse_table_target,
    prediction_view,
    row_pairs,
    stage1_of,
    top_k_view,
    top_k_view_id,
    unique,
    without_failed,
)
from ltbench.workflow.recovery import damaged_records, rebuild_damaged
from ltbench.workflow.workdir import REQUEST_FILE as RETRAIN_REQUEST, request_retrain
from ltbench.workflow.resources import (
    MAX_RUNTIME_MIN,
    PREDICT_IMAGES_PER_S,
    RESUBMIT_EXIT_CODE,
    cap_runtime,
    evaluate_resources,
    predict_resources,
    checkpoint_signal,
    LAUNCHERS,
    Launch,
    gpus_for,
    light_resources,
    retry_runtime,
    slurm_placement,
    train_launch,
    train_resources,
    train_retries,
)

__all__ = [
    "ID_PATTERN", "MAX_RUNTIME_MIN", "PREDICT_IMAGES_PER_S", "PAPERS", "RESUBMIT_EXIT_CODE", "cap_runtime", "evaluate_resources", "predict_resources", "checkpoint_signal", "retry_runtime", "train_retries", "RowServe", "RunInfo", "WorkflowPlan", "ap_fixed_k", "backbone_marker", "data_marker", "training_inputs", "evaluate_ap_fixed_args",
    "export_extra_columns", "export_results_dir", "gpus_for", "LAUNCHERS", "Launch", "train_launch", "light_resources", "metrics_file", "parent_workdir_args", "parse_table_target",
    "predictions_dir", "prediction_view", "record_file", "row_pairs", "run_json", "slurm_placement", "stage1_of",
    "top_k_dir", "top_k_view", "top_k_view_id", "train_done", "train_resources", "unique", "view_json", "without_failed",
    "work_dir", "damaged_records", "rebuild_damaged", "RETRAIN_REQUEST", "request_retrain",
]
