"""``ltbench predict``: predict a (run, view) on a split into detections.json + proposal_stats.npz."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import click

from ltbench.errors import LtbenchError


def data_options(func):
    """Options shared by train and predict that say where the data is."""
    options = [
        click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="Root of generated/downloaded data (sets $LTBENCH_DATA for workflows/config/datasets.yaml)."),
        click.option("--train-ann", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="Training annotation file (overrides the dataset config; needs --val-ann and --image-root)."),
        click.option("--val-ann", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="Validation annotation file (overrides the dataset config)."),
        click.option("--image-root", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="Folder that image paths are relative to: the COCO root for real data (overrides the dataset config)."),
    ]
    for option in reversed(options):
        func = option(func)
    return functools.wraps(func)(func)


def resolve_data(run_config: dict, config_path: Path, *, data_root: Path | None, train_ann: Path | None,
                 val_ann: Path | None, image_root: Path | None):
    """DatasetPaths for the run: explicit files when all three are given, else the dataset config
    (``ltbench.data.datasets.ensure``, which generates synthetic smoke data when it is missing)."""
    import os

    explicit = [train_ann, val_ann, image_root]
    if any(explicit):
        if not all(explicit):
            raise LtbenchError("--train-ann, --val-ann and --image-root go together", key="--train-ann/--val-ann/--image-root",
                               expected="all three or none")
        from types import SimpleNamespace

        return SimpleNamespace(train=Path(train_ann), val=Path(val_ann), image_root=Path(image_root))
    if data_root is not None:
        os.environ["LTBENCH_DATA"] = str(Path(data_root).resolve())
    for key in ("dataset", "scale"):
        if key not in run_config:
            raise LtbenchError(f"run config has no {key!r}", path=config_path, key=key,
                               expected="a resolved run config from `ltbench plan`")
    from ltbench.data import datasets

    resolver = getattr(datasets, "ensure", datasets.resolve)
    return resolver(run_config["dataset"], run_config["scale"])


@click.command(name="predict")
@click.option("--run-config", "run_config_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Resolved run config (JSON).")
@click.option("--view-config", "view_config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="View config (JSON); default: the plain view.")
@click.option("--workdir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The run's work directory (with done.json).")
@click.option("--split", type=click.Choice(["val", "train"]), default="val", show_default=True)
@click.option("--out-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Where detections.json and proposal_stats.npz go.")
@click.option("--framework", default=None, help="Override the run's framework.")
@click.option("--device", type=click.Choice(["auto", "cuda", "cpu"]), default=None,
              help="auto (default, $LTBENCH_DEVICE): CUDA when usable, an error at paper scale when not; cpu: debugging.")
@data_options
def command(run_config_path: Path, view_config_path: Path | None, workdir: Path, split: str, out_dir: Path,
            framework: str | None, device: str | None, **data_kwargs) -> None:
    """Predict a (run, view) on SPLIT: OUT_DIR/detections.json (LVIS results, <= 300 per image, score
    >= 1e-4, masks as RLE) and OUT_DIR/proposal_stats.npz (confusion matrix, proposal labels)."""
    from adapters import get_adapter
    from ltbench.io import read_json

    run_config = read_json(run_config_path)
    if framework:
        run_config = {**run_config, "framework": framework}
    view_config = read_json(view_config_path) if view_config_path else {"id": "plain", "name": "plain"}
    data = resolve_data(run_config, run_config_path, **data_kwargs)
    adapter = get_adapter(run_config.get("framework", "torchvision"))
    summary = adapter.predict(run_config, view_config, workdir, data, split=split, out_dir=out_dir, device=device)
    click.echo(json.dumps(summary))
