"""``ltbench evaluate``: LVIS metrics of record for a detections file, as a flat JSON object."""

from __future__ import annotations

import click


@click.command("evaluate")
@click.option("--gt", "gt_path", required=True, type=click.Path(dir_okay=False),
              help="Ground truth: LVIS-format annotation JSON (val).")
@click.option("--detections", "dets_path", required=True, type=click.Path(dir_okay=False),
              help="Detections: LVIS results JSON (list of {image_id, category_id, bbox, score, segmentation}).")
@click.option("--iou-types", default="bbox,segm", show_default=True, help="Comma-separated: bbox, segm.")
@click.option("--evaluator", type=click.Choice(["lvis-api", "fast"]), default="lvis-api", show_default=True,
              help="lvis-api: the evaluator of record; fast: faster-coco-eval in LVIS mode, same numbers.")
@click.option("--train-ann", type=click.Path(dir_okay=False), default=None,
              help="Training annotations: adds AP1..AP4 (and cls.ACC1..4) over training-instance bins.")
@click.option("--bins", type=click.Choice(["lvis", "coco-lt"]), default="lvis", show_default=True,
              help="Instance-count bins: lvis (0,10),[10,100),[100,1000),[1000,inf); coco-lt <20,20-400,400-8000,>=8000.")
@click.option("--proposal-stats", type=click.Path(dir_okay=False), default=None,
              help="proposal_stats.npz from ltbench predict: adds PwB and cls.ACC, cls.ACCbg.")
@click.option("--workers", type=int, default=None,
              help="Processes for --evaluator fast (default: the idle CPUs among those allowed).")
@click.option("--plot-dir", type=click.Path(file_okay=False), default=None,
              help="Also write plots here: per-class AP vs training instances (needs --train-ann) and the "
                   "log2 confusion-matrix heatmap (needs --proposal-stats).")
@click.option("--ap-fixed", is_flag=True,
              help="Also AP-fixed / AP-pool (Dave et al. 2021): <iou>.APfixed[_r|_c|_f], <iou>.APpool[_r|_c|_f]; "
                   "meaningful on detections from the adapters' per_class_top_k mode (no per-image cap).")
@click.option("--dets-per-class", type=click.IntRange(min=1), default=None,
              help="With --ap-fixed: detections kept per category over the whole set (default 10000).")
@click.option("--ap-fixed-detections", "fixed_dets_path", type=click.Path(dir_okay=False), default=None,
              help="Compute AP-fixed / AP-pool on this file (the per_class_top_k prediction) while the standard "
                   "metrics stay on --detections (capped per image); implies --ap-fixed.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Metrics JSON to write.")
@click.option("-v", "--verbose", is_flag=True, help="Log the time of each phase.")
def command(gt_path: str, dets_path: str, iou_types: str, evaluator: str, train_ann: str | None, bins: str,
            proposal_stats: str | None, workers: int | None, plot_dir: str | None, ap_fixed: bool,
            dets_per_class: int | None, fixed_dets_path: str | None, out_path: str, verbose: bool) -> None:
    """LVIS metrics of record (bbox/segm, bins, PwB) for a detections file.

    Writes a flat JSON object of canonical keys (bbox.AP, segm.APr, segm.AP1, PwB, cls.ACC, ...) in AP
    points (percent), unrounded, -1 where LVIS leaves a metric undefined.
    """
    import time

    from ltbench.evaluation.lvis_eval import evaluate
    from ltbench.io import write_json

    start = time.perf_counter()
    if verbose:
        import logging

        logging.basicConfig(format="%(name)s: %(message)s")
        logging.getLogger("ltbench.evaluation").setLevel(logging.INFO)
    train_counts = None
    if train_ann is not None:
        from ltbench.evaluation.bins import training_instance_counts

        train_counts = training_instance_counts(train_ann)
    metrics, results = evaluate(gt_path, dets_path, iou_types=iou_types, evaluator=evaluator,
                                proposal_stats=proposal_stats, bins=bins, train_counts=train_counts,
                                workers=workers, return_results=True)
    ap_fixed = ap_fixed or fixed_dets_path is not None
    if dets_per_class is not None and not ap_fixed:
        from ltbench.errors import LtbenchError

        raise LtbenchError("--dets-per-class goes with --ap-fixed", key="--dets-per-class")
    if ap_fixed:
        from ltbench.evaluation.ap_fixed import DETS_PER_CLASS, evaluate_fixed

        types = tuple(t.strip() for t in iou_types.split(",") if t.strip())
        metrics.update(evaluate_fixed(gt_path, fixed_dets_path or dets_path, types, dets_per_class=dets_per_class or DETS_PER_CLASS))
    write_json(out_path, metrics)
    if plot_dir is not None:
        _plots(plot_dir, gt_path, results, train_counts, proposal_stats, bins)
    shown = ", ".join(f"{k}={v:.2f}" for k, v in metrics.items()
                      if k.endswith((".AP", ".APr", "PwB", "cls.ACC", ".APfixed", ".APpool")))
    click.echo(f"{out_path}: {len(metrics)} metrics ({evaluator}, {time.perf_counter() - start:.1f}s) {shown}")


def _plots(plot_dir: str, gt_path: str, results: dict, train_counts: dict | None,
           proposal_stats: str | None, bins: str) -> None:
    from pathlib import Path

    from ltbench.evaluation.lvis_inputs import load_ground_truth
    from ltbench.evaluation.lvis_summary import per_category_ap

    out = Path(plot_dir)
    gt = load_ground_truth(gt_path)
    if train_counts is not None:
        from ltbench.evaluation.plots import plot_ap_vs_instances

        for iou_type, res in results.items():
            plot_ap_vs_instances(per_category_ap(res), train_counts, out / f"{iou_type}_ap_vs_instances.png",
                                 frequency=gt.frequency, scheme=bins, title=f"{iou_type}: per-class AP")
    if proposal_stats is not None:
        from ltbench.evaluation.confusion import load_proposal_stats, plot_confusion_heatmap, short_name, soft_confusion_matrix

        data = load_proposal_stats(proposal_stats)
        names_by_id = {c["id"]: c.get("name", str(c["id"])) for c in gt.data["categories"]}
        # category names from the annotation file, with the LVIS frequency group (r/c/f) where it has one
        freq = gt.frequency or {}
        names = [short_name(names_by_id.get(int(c), f"category {int(c)}")) + (f" [{freq[int(c)]}]" if int(c) in freq else "")
                 for c in data["category_ids"]]
        M = soft_confusion_matrix(data["cm_sum"], data["cm_count"])
        if (data["cm_count"] > 0).any():
            plot_confusion_heatmap(M, names, out / "confusion_log2.png")
