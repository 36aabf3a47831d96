"""``ltbench data``: make data (synthetic LVIS, real-LVIS subsets, COCO-LT) and show where data lives."""

from __future__ import annotations

import click


@click.group(name="data")
def command() -> None:
    """Make data: synthetic LVIS, real-LVIS subsets, COCO-LT; resolve dataset paths."""


@command.command("synth")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--seed", default=0, show_default=True, type=int, help="Same seed, byte-identical files.")
@click.option("--preset", default="smoke", show_default=True, type=click.Choice(["smoke", "tiny"]),
              help="smoke: 40 classes, 600/120 images; tiny: 12 classes, 130/30 images (128 px).")
@click.option("--force", is_flag=True, help="Regenerate even when identical data is already there.")
def synth_command(out: str, seed: int, preset: str, force: bool) -> None:
    """Synthetic long-tailed LVIS-format dataset (v0.5-like and v1-like annotation files, PNG images)."""
    import time

    from ltbench.data.synth import generate

    start = time.perf_counter()
    result = generate(out, seed=seed, preset=preset, force=force)
    if result.skipped:
        click.echo(f"{out}: up to date (preset {preset}, seed {seed}, params {result.params_hash[:12]}); nothing to do")
        return
    click.echo(
        f"wrote {out}: {result.num_classes} classes, {result.num_train_images} train / {result.num_val_images} val "
        f"images, annotations/lvis_v0.5_{{train,val}}.json and lvis_v1_{{train,val}}.json "
        f"({time.perf_counter() - start:.1f} s)"
    )
    from ltbench.data.lvis_meta import class_stats

    stats = class_stats(result.out / "annotations" / "lvis_v1_train.json")
    groups = "/".join(str(stats.frequencies.count(g)) for g in "rcf")
    click.echo(
        f"  r/c/f classes {groups}; training images per class {min(stats.image_counts)}..{max(stats.image_counts)}, "
        f"instances {sum(stats.instance_counts)} ({min(stats.instance_counts)}..{max(stats.instance_counts)} per class)"
    )


@command.command("backbone")
@click.option("--out", "out", default=None, type=click.Path(file_okay=False),
              help="Output folder (resnet18.pth and its marker backbone.json).")
@click.option("--dataset", default=None, help="Instead of --out/--recipe/--seed: the `backbone` block of this dataset "
              "in workflows/config/datasets.yaml (with --scale).")
@click.option("--scale", default="mini", show_default=True, help="With --dataset: the scale whose entry to read.")
@click.option("--recipe", default="mini", show_default=True, type=click.Choice(["mini", "tiny"]),
              help="mini: 1000 steps of 32 object images (the mini scale's); tiny: 8 steps (tests).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--force", is_flag=True, help="Train again even when a verified identical backbone is there.")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(min=1), help="CPU threads of torch.")
def backbone_command(out: str | None, dataset: str | None, scale: str, recipe: str, seed: int, force: bool,
                     threads: int) -> None:
    """Pre-train the mini scale's ResNet-18 on image-level labels of the synthetic classes (its "ImageNet")."""
    import torch

    if dataset is not None:
        from ltbench.data.datasets import backbone_dir

        folder, recipe, seed = backbone_dir(dataset, scale)
        out = str(folder)
    elif out is None:
        raise click.UsageError("give --out (or --dataset with --scale)")
    torch.set_num_threads(threads)
    import fcntl
    from pathlib import Path

    Path(out).mkdir(parents=True, exist_ok=True)
    with open(Path(out) / ".train.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # datasets that share the backbone: one trains it, the others wait
        _backbone(out, recipe, seed, force)


def _backbone(out: str, recipe: str, seed: int, force: bool) -> None:
    from ltbench.data.backbone import is_complete, pretrain

    if not force and is_complete(out, recipe, seed):
        click.echo(f"{out}: up to date (recipe {recipe}, seed {seed}); nothing to do")
        return
    marker = pretrain(out, recipe=recipe, seed=seed, force=force, log=lambda line: click.echo(line, err=True))
    click.echo(f"wrote {out}: held-out accuracy {marker['held_out_accuracy']:.3f} over {marker['classes']} classes, "
               f"sha256 {marker['sha256'][:12]} ({marker['seconds']} s)")


@command.command("subset")
@click.option("--ann", required=True, type=click.Path(dir_okay=False), help="A real LVIS annotation file.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Subset annotation file to write.")
@click.option("--images", "n_images", required=True, type=int, help="Number of images to keep.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--image-list", type=click.Path(dir_okay=False), default=None,
              help="Also write the image paths to copy (train2017/xxx.jpg, one a line).")
def subset_command(ann: str, out: str, n_images: int, seed: int, image_list: str | None) -> None:
    """Deterministic subset of a real LVIS file: all categories, the r/c/f mix, federated lists."""
    from ltbench.data.subset import write_subset

    summary = write_subset(ann, out, n_images=n_images, seed=seed, image_list=image_list)
    freq = ", ".join(f"{k}: {v}" for k, v in summary["images_with_frequency"].items())
    click.echo(
        f"wrote {out}: {summary['images']} images, {summary['annotations']} annotations, "
        f"{summary['categories']} categories ({summary['categories_with_annotations']} with annotations); "
        f"images containing each frequency: {freq}"
        + (f"; image list: {image_list}" if image_list else "")
    )


@command.command("coco-lt")
@click.option("--variant", required=True, type=click.Choice(["bags", "simcal"]))
@click.option("--coco", required=True, type=click.Path(dir_okay=False), help="COCO instances_train2017.json.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False))
@click.option("--lvis-categories", type=click.Path(dir_okay=False), default=None,
              help="bags: LVIS training annotation file (or category list) giving per-class training counts.")
@click.option("--count-field", default="instance_count", show_default=True,
              type=click.Choice(["instance_count", "image_count"]),
              help="bags: which LVIS count to match (the paper: instances).")
@click.option("--align", default="rank", show_default=True, type=click.Choice(["rank", "synset"]),
              help="bags: pair COCO with LVIS classes by sorted rank (default) or by synset.")
@click.option("--min-count", default=1, show_default=True, type=int, help="simcal: instances of the rarest class.")
@click.option("--seed", default=0, show_default=True, type=int)
def coco_lt_command(variant: str, coco: str, out: str, lvis_categories: str | None, count_field: str, align: str,
                    min_count: int, seed: int) -> None:
    """COCO-LT from COCO train2017 annotations, following BAGS or SimCal."""
    from ltbench.data.coco_lt import write_coco_lt

    summary = write_coco_lt(coco, out, variant=variant, lvis_categories=lvis_categories, count_field=count_field,
                            align=align, min_count=min_count, seed=seed)
    click.echo(
        f"wrote {out}: COCO-LT ({variant}) {summary['images']} images, {summary['annotations']} instances, "
        f"{summary['categories']} categories; per-class instances from {summary['max_count']} down to "
        f"{summary['min_count']}; {summary['short_classes']} classes below target (COCO has too few)"
    )


@command.command("resolve")
@click.argument("dataset")
@click.option("--scale", default="smoke", show_default=True)
@click.option("--ensure", "do_ensure", is_flag=True, help="Generate synthetic data first where configured.")
def resolve_command(dataset: str, scale: str, do_ensure: bool) -> None:
    """Print the train/val/image_root paths of DATASET at SCALE (errors say how to get missing data)."""
    from ltbench.data.datasets import ensure, resolve

    paths = ensure(dataset, scale) if do_ensure else resolve(dataset, scale)
    click.echo(f"train: {paths.train}\nval: {paths.val}\nimage_root: {paths.image_root}")
