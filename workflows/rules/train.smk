# Data, training and prediction (each writes the resolved config it used, from the plan).
#
# A failing step writes a failure note (results/failures/<run>/...) so the tables can say
# "failed (reason)"; the step still fails, so Snakemake reports it.


rule data:
    # Smoke scale: generates the synthetic data (once; a lock serialises concurrent jobs).
    # Paper scale: checks the data exists, else the log says where it was looked for and how to get it.
    output:
        wf.data_marker("{scale}", "{dataset}"),
    log:
        "results/logs/data/{scale}_{dataset}.log",
    conda:
        "../envs/ltbench.yaml"
    params:
        cmd=LTBENCH,
    resources:
        runtime=30,
        mem_mb=4000,
    shell:
        "{params.cmd} data resolve {wildcards.dataset} --scale {wildcards.scale} --ensure > {output} 2> {log}"


rule train:
    # Checkpoints live in work/<run>/ (not an output: a failed job's outputs are deleted, and the
    # resume needs them). The declared outputs are the resolved run config (written first, from the
    # plan) and a small marker copied from the adapter's done.json.
    input:
        data=dataset_marker,
        stage1=lambda w: PLAN.stage1_inputs(w.run),
    output:
        run=wf.run_json("{run}"),
        done=wf.train_done("{run}"),
    log:
        "results/logs/{run}/train.log",
    conda:
        "../envs/ltbench.yaml"
    params:
        cmd=LTBENCH,
        config=lambda w: json.dumps(PLAN.run(w.run).config, sort_keys=True),
        workdir=lambda w: f"{WORK}/{w.run}",
        parents=lambda w: wf.parent_workdir_args(PLAN.run(w.run).config, WORK),
        resubmit=RESUBMIT_EXIT_CODE,
    threads: 1
    # A job signalled before its time limit exits RESUBMIT_EXIT_CODE after a checkpoint (no failure note):
    # Snakemake resubmits it and it resumes. Other failures are retried as often, then fail for good.
    retries: TRAIN_RETRIES
    resources:
        runtime=train_res("runtime"),
        slurm_extra=train_res("slurm_extra"),
        mem_mb=train_res("mem_mb"),
        cpus_per_task=train_res("cpus_per_task"),
        gpu=train_res("gpu"),
        gpu_model=train_res("gpu_model"),
        slurm_partition=train_res("slurm_partition"),
        slurm_account=train_res("slurm_account"),
    shell:
        "(started=$(date -u +%Y-%m-%dT%H:%M:%S+00:00)"
        " && {params.cmd} results emit --run {wildcards.run} --config-json {params.config:q} --out {output.run}"
        " && OMP_NUM_THREADS={threads} {params.cmd} train --run-config {output.run} --workdir {params.workdir}"
        " {params.parents} && {params.cmd} results done --run {wildcards.run} --workdir {params.workdir} --started $started"
        " --out {output.done}) > {log} 2>&1"
        " || {{ rc=$?; if [ $rc -eq {params.resubmit} ]; then exit $rc; fi;"
        " {params.cmd} results fail --results-dir results --run {wildcards.run} --stage train --log {log}; exit 1; }}"


rule predict:
    input:
        run=wf.run_json("{run}"),
        done=wf.train_done("{run}"),
        data=dataset_marker,
    output:
        view=wf.view_json("{run}", "{view}"),
        detections="results/predictions/{run}/{view}/detections.json",
        stats="results/predictions/{run}/{view}/proposal_stats.npz",
    log:
        "results/logs/{run}/predict_{view}.log",
    conda:
        "../envs/ltbench.yaml"
    params:
        cmd=LTBENCH,
        config=lambda w: json.dumps(wf.prediction_view(PLAN.view(w.run, w.view)), sort_keys=True),
        view_id=lambda w: w.view,  # the id the emitted view config carries (predict_top_k: <view>-topk)
        workdir=lambda w: f"{WORK}/{w.run}",
        out_dir=lambda w: f"results/predictions/{w.run}/{w.view}",
    threads: 1
    resources:
        runtime=light_res("runtime", True),
        mem_mb=light_res("mem_mb", True),
        cpus_per_task=light_res("cpus_per_task", True),
        gpu=light_res("gpu", True),
        gpu_model=light_res("gpu_model", True),
        slurm_partition=light_res("slurm_partition", True),
        slurm_account=light_res("slurm_account", True),
    shell:
        "({params.cmd} results emit --run {wildcards.run} --view {params.view_id} --config-json {params.config:q}"
        " --out {output.view}"
        " && OMP_NUM_THREADS={threads} {params.cmd} predict --run-config {input.run} --view-config {output.view}"
        " --workdir {params.workdir} --split val --out-dir {params.out_dir}) > {log} 2>&1"
        " || {{ {params.cmd} results fail --results-dir results --run {wildcards.run} --view {wildcards.view} --stage predict --log {log}; exit 1; }}"


use rule predict as predict_top_k with:
    # AP-fixed / AP-pool views: the same view again in the adapters' per-class top-k mode (no per-image cap).
    output:
        view="results/predictions/{run}/{view}/topk/view.json",
        detections="results/predictions/{run}/{view}/topk/detections.json",
        stats="results/predictions/{run}/{view}/topk/proposal_stats.npz",
    log:
        "results/logs/{run}/predict_{view}_topk.log",
    params:
        cmd=LTBENCH,
        config=lambda w: json.dumps(wf.top_k_view(PLAN.view(w.run, w.view), ap_fixed_budget(w)), sort_keys=True),
        view_id=lambda w: wf.top_k_view_id(w.view),
        workdir=lambda w: f"{WORK}/{w.run}",
        out_dir=lambda w: wf.top_k_dir(w.run, w.view),
