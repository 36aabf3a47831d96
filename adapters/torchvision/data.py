"""Training and prediction data of the torchvision adapter.

``TrainingImages`` decodes an image and its targets (in DataLoader workers when the run has them);
augmentation (the random horizontal flip) happens in the training process right after the iteration's
re-seed, so that it draws the same numbers with or without workers and across a resume. Resizing and
normalisation are the model's own transform (``GeneralizedRCNNTransform``, multi-scale in training).
"""

from __future__ import annotations

from typing import Any

import torch

from adapters.records import LvisSplit, instance_masks, read_image


class TrainingImages(torch.utils.data.Dataset):
    """item -> (image (3, H, W) float in [0, 1], target, sampled class or None).

    An item is an image index, or under SimCal's bi-level sampler an (image index, sampled class) pair.
    ``target``: ``boxes`` (N, 4) xyxy, ``labels`` (N,) with background first (class index + 1), and
    ``masks`` (N, H, W) uint8 for mask detectors.
    """

    def __init__(self, split: LvisSplit, *, with_masks: bool) -> None:
        self.split, self.with_masks = split, with_masks

    def __len__(self) -> int:
        return len(self.split.images)

    def __getitem__(self, item: Any) -> tuple[torch.Tensor, dict, int | None]:
        index, sampled_class = (int(item[0]), int(item[1])) if isinstance(item, (tuple, list)) else (int(item), None)
        record = self.split.images[index]
        target = {"boxes": torch.from_numpy(record.boxes), "labels": torch.from_numpy(record.classes) + 1}
        if self.with_masks:
            target["masks"] = instance_masks(record)
        return read_image(record), target, sampled_class


def hflip(image: torch.Tensor, target: dict) -> tuple[torch.Tensor, dict]:
    """Mirror an image (3, H, W) and its boxes/masks left-right."""
    w = image.shape[-1]
    image = image.flip(-1)
    boxes = target["boxes"].clone()
    boxes[:, [0, 2]] = w - target["boxes"][:, [2, 0]]
    target = {**target, "boxes": boxes}
    if "masks" in target:
        target["masks"] = target["masks"].flip(-1)
    return image, target


def masks_to_rles(mask_probs: Any, boxes: Any, image_size: tuple[int, int], chunk: int) -> list[dict]:
    """(N, 1, M, M) mask probabilities + (N, 4) xyxy boxes at the original image size (h, w) -> N LVIS RLEs.

    torchvision's own ``paste_masks_in_image`` (identical pixels to its transform's postprocess), run on
    ``chunk`` masks at a time; each chunk is thresholded at 0.5 and encoded by one pycocotools call."""
    import numpy as np
    from pycocotools import mask as mask_utils
    from torchvision.models.detection.roi_heads import paste_masks_in_image

    rles: list[dict] = []
    for start in range(0, len(mask_probs), chunk):
        pasted = paste_masks_in_image(mask_probs[start : start + chunk], boxes[start : start + chunk], image_size)
        binary = (pasted[:, 0] > 0.5).cpu().numpy().astype(np.uint8)  # (n, h, w)
        for rle in mask_utils.encode(np.asfortranarray(binary.transpose(1, 2, 0))):
            rle["counts"] = rle["counts"].decode("ascii")
            rles.append(rle)
    return rles
