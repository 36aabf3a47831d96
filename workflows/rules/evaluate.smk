# Evaluation (one evaluator of record for every framework) and the results store.


rule evaluate:
    input:
        detections=rules.predict.output.detections,
        stats=rules.predict.output.stats,
        data=dataset_marker,
        # AP-fixed / AP-pool views: their per-class top-k prediction (rule predict_top_k); none otherwise
        top_k=lambda w: [f"{wf.top_k_dir(w.run, w.view)}/detections.json"] if ap_fixed_budget(w) else [],
    output:
        metrics="results/metrics/{run}/{view}.json",
    log:
        "results/logs/{run}/evaluate_{view}.log",
    conda:
        "../envs/ltbench.yaml"
    params:
        cmd=LTBENCH,
        gt=lambda w: dataset_paths(w).val,
        train_ann=lambda w: dataset_paths(w).train,
        evaluator=config["evaluator"],
        bins=lambda w: f"--bins {PLAN.bins(w.run, w.view)}" if PLAN.bins(w.run, w.view) else "",
        # only what the run's detector produces and the view's columns need (Faster R-CNN: bbox)
        iou_types=lambda w: PLAN.iou_types(w.run, w.view),
        # AP-fixed / AP-pool: views of tables with such columns, or every view with config ap_fixed
        ap_fixed=lambda w: wf.evaluate_ap_fixed_args(
            PLAN.view(w.run, w.view), f"{wf.top_k_dir(w.run, w.view)}/detections.json", config["ap_fixed"], SCALE
        ),
        # Per-class AP vs training instances and the confusion-matrix heatmap, for the audit report.
        # Not declared outputs (optional extras); the audit collects whatever is there.
        plots=lambda w: f"--plot-dir results/plots/{w.run}/{w.view}" if config["plots"] else "",
    threads: 1
    resources:
        **evaluate_resources(),
    shell:
        "{params.cmd} step evaluate --run {wildcards.run} --view {wildcards.view} --threads {threads} --log {log} -- --gt {params.gt} --detections {input.detections} --train-ann {params.train_ann} --proposal-stats {input.stats} --iou-types {params.iou_types} --evaluator {params.evaluator} {params.bins} {params.ap_fixed} {params.plots} --out {output.metrics} > {log} 2>&1"


rule record:
    # One store record per (run, view): metrics + resolved config and hash + provenance, atomic.
    input:
        metrics="results/metrics/{run}/{view}.json",
        run=wf.run_json("{run}"),
        view=wf.view_json("{run}", "{view}"),
        done=wf.train_done("{run}"),
    output:
        wf.record_file("{run}", "{view}"),
    log:
        "results/logs/{run}/record_{view}.log",
    conda:
        "../envs/ltbench.yaml"
    params:
        cmd=LTBENCH,
    resources:
        runtime=5,
        mem_mb=1000,
    shell:
        "{params.cmd} results record --run-config {input.run} --view-config {input.view} --metrics {input.metrics}"
        " --train-done {input.done} --out {output} > {log} 2>&1"
