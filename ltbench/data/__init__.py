"""Data tools: synthetic long-tailed LVIS, subsets of real LVIS, COCO-LT, dataset path resolution.

Modules (imported lazily, nothing heavy at package import):
- ``synth``: ``generate(out, seed=, preset=)`` writes a synthetic LVIS-format dataset.
- ``subset``: ``make_subset(ann, n_images, seed=)`` a deterministic subset of a real LVIS file.
- ``coco_lt``: ``build_coco_lt(coco, variant=)`` COCO-LT following BAGS or SimCal.
- ``datasets``: ``resolve(dataset, scale) -> DatasetPaths`` and ``ensure(dataset, scale)``.
- ``layout``: ``image_relative_path(image)``, the one place an image record becomes a path under ``image_root``.
- ``lvis_meta``: per-class training statistics in class-index order (ascending category id).
"""
