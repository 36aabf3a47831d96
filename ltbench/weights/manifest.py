"""Every pretrained weight file a paper-scale run can start from: where it comes from and how it is checked.

A run with ``pretrain: imagenet`` starts from an ImageNet backbone, a run with ``pretrain: coco`` from a
COCO-trained detector, each in the convention of the run's framework. The need is named by a weight id
``<framework>/<kind>/<key>``: ``kind`` is the run's ``pretrain`` (``imagenet`` | ``coco``); ``key`` is the
backbone without ``_fpn``/``_dcn`` for ImageNet files (``r50_fpn`` and ``r50_dcn_fpn`` -> ``r50``) and
``<detector>_<backbone>`` for COCO detectors (``faster_rcnn_r50_fpn``). Runs at smoke scale (random init),
runs initialised from another run (``init_from``, ``pretrain: lvis``) and ``pretrain: none`` need no file.
A stage-2 run needs what its stage-1 run needs (same framework, backbone and pretrain).

Checksums. torch.hub and OpenMMLab's ``publish_model.py`` name published files ``<name>-<first 8 hex digits
of the file's sha256>.<ext>``: for those files ltbench verifies that prefix ("prefix" below), records the
full sha256 in ``<cache>/weights.lock.json`` at first fetch and verifies the full sha256 on every later
fetch. detectron2's files carry no published checksum ("first fetch" below): the first fetch records their
sha256 in the lock file (trust on first use) and every later fetch verifies it. Copy the lock file along
with the cache so that a second site verifies against the first site's download. No checksum in this table
was verified against a downloaded file (the manifest was written without internet access): the prefixes
are the ones the URLs publish.

Sizes are torchvision's published ``_file_size`` metadata where there is one; otherwise unknown until the
first fetch records the exact size in the lock file.

Every file (weight ids it serves; checksum: ``prefix <hex>`` = published sha256 prefix, ``first fetch`` =
none published; source URL; convention):

ImageNet backbones, torchvision state dicts (mmdet's ``torchvision://`` names load the very same files)
  torchvision/imagenet/r50, mmdet/imagenet/r50 -- prefix 0676ba61
      https://download.pytorch.org/models/resnet50-0676ba61.pth
      torchvision ResNet50_Weights.IMAGENET1K_V1; mmdet ``torchvision://resnet50``
  torchvision/imagenet/r101, mmdet/imagenet/r101 -- prefix 63fe2227
      https://download.pytorch.org/models/resnet101-63fe2227.pth
      torchvision ResNet101_Weights.IMAGENET1K_V1; mmdet ``torchvision://resnet101``
  torchvision/imagenet/x101_32x8d -- prefix 8ba56ff5
      https://download.pytorch.org/models/resnext101_32x8d-8ba56ff5.pth
  torchvision/imagenet/x101_64x4d -- prefix 173b62eb
      https://download.pytorch.org/models/resnext101_64x4d-173b62eb.pth
ImageNet backbones, OpenMMLab (``open-mmlab://`` names)
  mmdet/imagenet/x101_64x4d -- prefix ee2c6f71
      https://download.openmmlab.com/pretrain/third_party/resnext101_64x4d-ee2c6f71.pth
      ``open-mmlab://resnext101_64x4d``
  mmdet/imagenet/x101_32x8d -- prefix 1516f1aa
      https://download.openmmlab.com/pretrain/third_party/resnext101_32x8d-1516f1aa.pth
      ``open-mmlab://detectron2/resnext101_32x8d`` (detectron2's Caffe2 X-101-32x8d, converted)
ImageNet backbones, detectron2 (Caffe2 pickles)
  detectron2/imagenet/r50 -- first fetch
      https://dl.fbaipublicfiles.com/detectron2/ImageNetPretrained/MSRA/R-50.pkl
  detectron2/imagenet/r101 -- first fetch
      https://dl.fbaipublicfiles.com/detectron2/ImageNetPretrained/MSRA/R-101.pkl
  detectron2/imagenet/x101_32x8d -- first fetch
      https://dl.fbaipublicfiles.com/detectron2/ImageNetPretrained/FAIR/X-101-32x8d.pkl
COCO-trained detectors
  mmdet/coco/faster_rcnn_r50_fpn -- prefix a5d8aa15 (mmdet faster-rcnn_r50_fpn_2x_coco)
      https://download.openmmlab.com/mmdetection/v2.0/faster_rcnn/faster_rcnn_r50_fpn_2x_coco/faster_rcnn_r50_fpn_2x_coco_bbox_mAP-0.384_20200504_210434-a5d8aa15.pth
  mmdet/coco/mask_rcnn_r50_fpn -- prefix 3e542a40 (mmdet mask-rcnn_r50_fpn_2x_coco)
      https://download.openmmlab.com/mmdetection/v2.0/mask_rcnn/mask_rcnn_r50_fpn_2x_coco/mask_rcnn_r50_fpn_2x_coco_bbox_mAP-0.392__segm_mAP-0.354_20200505_003907-3e542a40.pth
  mmdet/coco/faster_rcnn_x101_64x4d_fpn -- prefix 5961fa95 (mmdet faster-rcnn_x101-64x4d_fpn_2x_coco)
      https://download.openmmlab.com/mmdetection/v2.0/faster_rcnn/faster_rcnn_x101_64x4d_fpn_2x_coco/faster_rcnn_x101_64x4d_fpn_2x_coco_20200512_161033-5961fa95.pth
  mmdet/coco/cascade_rcnn_x101_64x4d_fpn -- prefix 051557b1 (mmdet cascade-rcnn_x101_64x4d_fpn_20e_coco)
      https://download.openmmlab.com/mmdetection/v2.0/cascade_rcnn/cascade_rcnn_x101_64x4d_fpn_20e_coco/cascade_rcnn_x101_64x4d_fpn_20e_coco_20200509_224357-051557b1.pth
  mmdet/coco/htc_x101_64x4d_fpn -- prefix b181fd7a (mmdet htc_x101-64x4d_fpn_16xb1-20e_coco)
      https://download.openmmlab.com/mmdetection/v2.0/htc/htc_x101_64x4d_fpn_16x1_20e_coco/htc_x101_64x4d_fpn_16x1_20e_coco_20200318-b181fd7a.pth
  mmdet/coco/htc_x101_64x4d_dcn_fpn -- prefix 946fd751 (mmdet htc_x101-64x4d-dconv-c3-c5_fpn_ms-400-1400-16xb1-20e_coco)
      https://download.openmmlab.com/mmdetection/v2.0/htc/htc_x101_64x4d_fpn_dconv_c3-c5_mstrain_400_1400_16x1_20e_coco/htc_x101_64x4d_fpn_dconv_c3-c5_mstrain_400_1400_16x1_20e_coco_20200312-946fd751.pth
  torchvision/coco/faster_rcnn_r50_fpn -- prefix 258fb6c6 (torchvision FasterRCNN_ResNet50_FPN_Weights.COCO_V1)
      https://download.pytorch.org/models/fasterrcnn_resnet50_fpn_coco-258fb6c6.pth
  torchvision/coco/mask_rcnn_r50_fpn -- prefix bf2d0c1e (torchvision MaskRCNN_ResNet50_FPN_Weights.COCO_V1)
      https://download.pytorch.org/models/maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth
  detectron2/coco/mask_rcnn_r50_fpn -- first fetch (detectron2 COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x)
      https://dl.fbaipublicfiles.com/detectron2/COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x/137849600/model_final_f10217.pkl
  detectron2/coco/faster_rcnn_r50_fpn -- first fetch (detectron2 COCO-Detection/faster_rcnn_R_50_FPN_3x)
      https://dl.fbaipublicfiles.com/detectron2/COCO-Detection/faster_rcnn_R_50_FPN_3x/137849458/model_final_280758.pkl

Where each URL comes from: torchvision 0.28's weight enums (``ResNet50_Weights.IMAGENET1K_V1`` ...);
mmengine 0.10.7's ``hub/torchvision_0.12.json`` (``torchvision://`` names: the very same URLs as
torchvision's ``IMAGENET1K_V1``) and ``hub/openmmlab.json`` (``open-mmlab://`` names); mmdet 3.3.0's
``configs/<model>/metafile.yml`` (COCO detectors, the metafile ``Name`` in parentheses above); detectron2's
model zoo (``detectron2://`` = ``https://dl.fbaipublicfiles.com/detectron2/``; detectron2 is not installed
here, the paths are those of its ``model_zoo.py`` and LVIS configs). tests/test_weights.py checks the
torchvision and mmengine/mmdet URLs against the installed packages.

Choices (each an assumption, overridable per weight id with ``weights.files`` / ``LTBENCH_WEIGHT_FILES``):
BAGS starts from mmdet's COCO Faster R-CNN R50-FPN 2x (the official code's ``faster_rcnn_r50_fpn_2x``) and
Mask R-CNN R50-FPN 2x (assumption bags-mask-coco-init); today's mmdet 3.x model zoo serves the mmdet v2.0
retrains of those configs, not the v1 files BAGS used. BAGS' X101 / Cascade / HTC COCO inits
(assumption bags-x101-cascade-init) use the longest COCO schedule mmdet publishes for that detector (2x,
20e). DisAlign's COCO init (assumption disalign-coco-pretrain) uses detectron2's Mask R-CNN R50-FPN 3x (the
paper does not say which schedule). torchvision's COCO detectors are torchvision's own (26 epochs), the
nearest torchvision-convention equivalents.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from ltbench.errors import LtbenchError

KINDS = ("imagenet", "coco")
FRAMEWORKS = ("torchvision", "mmdet", "detectron2")
WEIGHT_ID_RE = re.compile(r"^(torchvision|mmdet|detectron2)/(imagenet|coco)/[a-z0-9_]+$")
WEIGHT_ID_FORM = "<framework>/<kind>/<key>, e.g. mmdet/imagenet/r50 or mmdet/coco/faster_rcnn_r50_fpn"

CHECK_SHA256 = "sha256"  # the full sha256 is in the manifest
CHECK_PREFIX = "prefix"  # the first hex digits of the sha256 are published in the file name
CHECK_FIRST_FETCH = "first fetch"  # nothing published: recorded at first fetch, verified thereafter


@dataclass(frozen=True)
class Use:
    """One weight id a file serves: which framework convention, and where the URL came from."""

    id: str
    convention: str  # how the framework names / loads it, e.g. "mmdet torchvision://resnet50"
    provenance: str  # where the URL was taken from


@dataclass(frozen=True)
class WeightFile:
    """A downloadable weight file.

    ``relpath`` (its place under the cache) is the URL's host and path, so a copy of the cache served over
    HTTP is a mirror (``--mirror``). ``sha256`` / ``sha256_prefix``: what is published; a file with neither
    is verified against the sha256 recorded in the lock file at its first fetch.
    """

    url: str
    what: str
    uses: tuple[Use, ...]
    sha256: str | None = None
    sha256_prefix: str | None = None
    size_note: str | None = None
    notes: str = ""

    @property
    def relpath(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.netloc}{parts.path}"

    @property
    def name(self) -> str:
        return self.relpath.rsplit("/", 1)[-1]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(u.id for u in self.uses)

    @property
    def check(self) -> str:
        if self.sha256:
            return CHECK_SHA256
        return CHECK_PREFIX if self.sha256_prefix else CHECK_FIRST_FETCH

    def use(self, weight_id: str) -> Use:
        for u in self.uses:
            if u.id == weight_id:
                return u
        raise KeyError(weight_id)


_TV = "https://download.pytorch.org/models/"
_OMM = "https://download.openmmlab.com/"
_D2 = "https://dl.fbaipublicfiles.com/detectron2/"
_TV_NOTE = "torchvision ResNet state dict (RGB input, ImageNet mean/std normalisation, pytorch-style blocks)"
_MMENGINE_TV = "mmengine 0.10.7 hub/torchvision_0.12.json {name!r}, what mmdet's torchvision://{name} loads"
_MMDET_META = "mmdet 3.3.0 configs/{folder}/metafile.yml: {name}"


def _tv(enum: str) -> str:
    return f"torchvision 0.28 {enum}.url"


FILES: tuple[WeightFile, ...] = (
    # ---- ImageNet backbones, torchvision state dicts (torchvision and mmdet's torchvision:// share them) ----
    WeightFile(
        url=_TV + "resnet50-0676ba61.pth", what="ResNet-50, ImageNet-1k (torchvision IMAGENET1K_V1)",
        sha256_prefix="0676ba61", size_note="about 97.8 MB (torchvision metadata)", notes=_TV_NOTE,
        uses=(Use("torchvision/imagenet/r50", "torchvision ResNet50_Weights.IMAGENET1K_V1",
                  _tv("ResNet50_Weights.IMAGENET1K_V1")),
              Use("mmdet/imagenet/r50", "mmdet torchvision://resnet50", _MMENGINE_TV.format(name="resnet50"))),
    ),
    WeightFile(
        url=_TV + "resnet101-63fe2227.pth", what="ResNet-101, ImageNet-1k (torchvision IMAGENET1K_V1)",
        sha256_prefix="63fe2227", size_note="about 170.5 MB (torchvision metadata)", notes=_TV_NOTE,
        uses=(Use("torchvision/imagenet/r101", "torchvision ResNet101_Weights.IMAGENET1K_V1",
                  _tv("ResNet101_Weights.IMAGENET1K_V1")),
              Use("mmdet/imagenet/r101", "mmdet torchvision://resnet101", _MMENGINE_TV.format(name="resnet101"))),
    ),
    WeightFile(
        url=_TV + "resnext101_32x8d-8ba56ff5.pth", what="ResNeXt-101 32x8d, ImageNet-1k (torchvision IMAGENET1K_V1)",
        sha256_prefix="8ba56ff5", size_note="about 339.6 MB (torchvision metadata)", notes=_TV_NOTE,
        uses=(Use("torchvision/imagenet/x101_32x8d", "torchvision ResNeXt101_32X8D_Weights.IMAGENET1K_V1",
                  _tv("ResNeXt101_32X8D_Weights.IMAGENET1K_V1")),),
    ),
    WeightFile(
        url=_TV + "resnext101_64x4d-173b62eb.pth", what="ResNeXt-101 64x4d, ImageNet-1k (torchvision IMAGENET1K_V1)",
        sha256_prefix="173b62eb", size_note="about 319.3 MB (torchvision metadata)", notes=_TV_NOTE,
        uses=(Use("torchvision/imagenet/x101_64x4d", "torchvision ResNeXt101_64X4D_Weights.IMAGENET1K_V1",
                  _tv("ResNeXt101_64X4D_Weights.IMAGENET1K_V1")),),
    ),
    # ---- COCO detectors, torchvision ----
    WeightFile(
        url=_TV + "fasterrcnn_resnet50_fpn_coco-258fb6c6.pth", what="Faster R-CNN R50-FPN, COCO (torchvision COCO_V1, 26 epochs)",
        sha256_prefix="258fb6c6", size_note="about 159.7 MB (torchvision metadata)",
        notes="torchvision detector state dict (91 COCO classes incl. background); FrozenBN backbone",
        uses=(Use("torchvision/coco/faster_rcnn_r50_fpn", "torchvision FasterRCNN_ResNet50_FPN_Weights.COCO_V1",
                  _tv("FasterRCNN_ResNet50_FPN_Weights.COCO_V1")),),
    ),
    WeightFile(
        url=_TV + "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth", what="Mask R-CNN R50-FPN, COCO (torchvision COCO_V1, 26 epochs)",
        sha256_prefix="bf2d0c1e", size_note="about 169.8 MB (torchvision metadata)",
        notes="torchvision detector state dict (91 COCO classes incl. background); FrozenBN backbone",
        uses=(Use("torchvision/coco/mask_rcnn_r50_fpn", "torchvision MaskRCNN_ResNet50_FPN_Weights.COCO_V1",
                  _tv("MaskRCNN_ResNet50_FPN_Weights.COCO_V1")),),
    ),
    # ---- ImageNet backbones, mmdet open-mmlab:// ----
    WeightFile(
        url=_OMM + "pretrain/third_party/resnext101_64x4d-ee2c6f71.pth", what="ResNeXt-101 64x4d, ImageNet-1k (OpenMMLab)",
        sha256_prefix="ee2c6f71", notes="mmdet ResNeXt state dict, pytorch style, RGB ImageNet mean/std (mmdet's X-101-64x4d configs)",
        uses=(Use("mmdet/imagenet/x101_64x4d", "mmdet open-mmlab://resnext101_64x4d",
                  "mmengine 0.10.7 hub/openmmlab.json 'resnext101_64x4d'"),),
    ),
    WeightFile(
        url=_OMM + "pretrain/third_party/resnext101_32x8d-1516f1aa.pth",
        what="ResNeXt-101 32x8d, ImageNet-1k (detectron2's Caffe2 X-101-32x8d.pkl converted by OpenMMLab)",
        sha256_prefix="1516f1aa",
        notes="Caffe2 weights: mmdet's X-101-32x8d configs set mean [103.530, 116.280, 123.675], std [57.375, 57.120, "
              "58.395], bgr_to_rgb False",
        uses=(Use("mmdet/imagenet/x101_32x8d", "mmdet open-mmlab://detectron2/resnext101_32x8d",
                  "mmengine 0.10.7 hub/openmmlab.json 'detectron2/resnext101_32x8d'"),),
    ),
    # ---- COCO detectors, mmdet model zoo (mmdet 3.3 metafiles) ----
    WeightFile(
        url=_OMM + "mmdetection/v2.0/faster_rcnn/faster_rcnn_r50_fpn_2x_coco/"
                   "faster_rcnn_r50_fpn_2x_coco_bbox_mAP-0.384_20200504_210434-a5d8aa15.pth",
        what="Faster R-CNN R50-FPN 2x, COCO (mmdet faster-rcnn_r50_fpn_2x_coco, box AP 38.4)", sha256_prefix="a5d8aa15",
        notes="mmdet checkpoint (state_dict, 80 COCO classes)",
        uses=(Use("mmdet/coco/faster_rcnn_r50_fpn", "mmdet load_from, BAGS' COCO Faster R-CNN R50-FPN 2x",
                  _MMDET_META.format(folder="faster_rcnn", name="faster-rcnn_r50_fpn_2x_coco")),),
    ),
    WeightFile(
        url=_OMM + "mmdetection/v2.0/mask_rcnn/mask_rcnn_r50_fpn_2x_coco/"
                   "mask_rcnn_r50_fpn_2x_coco_bbox_mAP-0.392__segm_mAP-0.354_20200505_003907-3e542a40.pth",
        what="Mask R-CNN R50-FPN 2x, COCO (mmdet mask-rcnn_r50_fpn_2x_coco, box AP 39.2, mask AP 35.4)",
        sha256_prefix="3e542a40", notes="mmdet checkpoint (state_dict, 80 COCO classes)",
        uses=(Use("mmdet/coco/mask_rcnn_r50_fpn", "mmdet load_from, BAGS' COCO Mask R-CNN R50-FPN 2x",
                  _MMDET_META.format(folder="mask_rcnn", name="mask-rcnn_r50_fpn_2x_coco")),),
    ),
    WeightFile(
        url=_OMM + "mmdetection/v2.0/faster_rcnn/faster_rcnn_x101_64x4d_fpn_2x_coco/"
                   "faster_rcnn_x101_64x4d_fpn_2x_coco_20200512_161033-5961fa95.pth",
        what="Faster R-CNN X101-64x4d-FPN 2x, COCO (mmdet faster-rcnn_x101-64x4d_fpn_2x_coco)", sha256_prefix="5961fa95",
        notes="mmdet checkpoint (state_dict, 80 COCO classes)",
        uses=(Use("mmdet/coco/faster_rcnn_x101_64x4d_fpn", "mmdet load_from",
                  _MMDET_META.format(folder="faster_rcnn", name="faster-rcnn_x101-64x4d_fpn_2x_coco")),),
    ),
    WeightFile(
        url=_OMM + "mmdetection/v2.0/cascade_rcnn/cascade_rcnn_x101_64x4d_fpn_20e_coco/"
                   "cascade_rcnn_x101_64x4d_fpn_20e_coco_20200509_224357-051557b1.pth",
        what="Cascade R-CNN X101-64x4d-FPN 20e, COCO (mmdet cascade-rcnn_x101_64x4d_fpn_20e_coco)", sha256_prefix="051557b1",
        notes="mmdet checkpoint (state_dict, 80 COCO classes)",
        uses=(Use("mmdet/coco/cascade_rcnn_x101_64x4d_fpn", "mmdet load_from",
                  _MMDET_META.format(folder="cascade_rcnn", name="cascade-rcnn_x101_64x4d_fpn_20e_coco")),),
    ),
    WeightFile(
        url=_OMM + "mmdetection/v2.0/htc/htc_x101_64x4d_fpn_16x1_20e_coco/htc_x101_64x4d_fpn_16x1_20e_coco_20200318-b181fd7a.pth",
        what="HTC X101-64x4d-FPN 20e, COCO (mmdet htc_x101-64x4d_fpn_16xb1-20e_coco)", sha256_prefix="b181fd7a",
        notes="mmdet checkpoint (state_dict, 80 COCO classes, semantic branch trained on COCO-stuff)",
        uses=(Use("mmdet/coco/htc_x101_64x4d_fpn", "mmdet load_from",
                  _MMDET_META.format(folder="htc", name="htc_x101-64x4d_fpn_16xb1-20e_coco")),),
    ),
    WeightFile(
        url=_OMM + "mmdetection/v2.0/htc/htc_x101_64x4d_fpn_dconv_c3-c5_mstrain_400_1400_16x1_20e_coco/"
                   "htc_x101_64x4d_fpn_dconv_c3-c5_mstrain_400_1400_16x1_20e_coco_20200312-946fd751.pth",
        what="HTC X101-64x4d-FPN DCN (c3-c5) multi-scale 20e, COCO (mmdet htc_x101-64x4d-dconv-c3-c5_fpn_ms-400-1400-16xb1-20e_coco)",
        sha256_prefix="946fd751", notes="mmdet checkpoint (state_dict, 80 COCO classes, semantic branch trained on COCO-stuff)",
        uses=(Use("mmdet/coco/htc_x101_64x4d_dcn_fpn", "mmdet load_from",
                  _MMDET_META.format(folder="htc", name="htc_x101-64x4d-dconv-c3-c5_fpn_ms-400-1400-16xb1-20e_coco")),),
    ),
    # ---- detectron2 model zoo (detectron2:// = https://dl.fbaipublicfiles.com/detectron2/) ----
    WeightFile(
        url=_D2 + "ImageNetPretrained/MSRA/R-50.pkl", what="ResNet-50, ImageNet-1k (MSRA, Caffe-style)",
        notes="Caffe2 pickle: BGR input, PIXEL_MEAN [103.530, 116.280, 123.675], PIXEL_STD [1, 1, 1], RESNETS.STRIDE_IN_1X1 True "
              "(detectron2's Base-RCNN-FPN defaults)",
        uses=(Use("detectron2/imagenet/r50", "detectron2 detectron2://ImageNetPretrained/MSRA/R-50.pkl",
                  "detectron2 configs (LVISv0.5-/LVISv1-InstanceSegmentation mask_rcnn_R_50_FPN_1x.yaml MODEL.WEIGHTS)"),),
    ),
    WeightFile(
        url=_D2 + "ImageNetPretrained/MSRA/R-101.pkl", what="ResNet-101, ImageNet-1k (MSRA, Caffe-style)",
        notes="Caffe2 pickle: BGR input, PIXEL_STD [1, 1, 1], RESNETS.STRIDE_IN_1X1 True",
        uses=(Use("detectron2/imagenet/r101", "detectron2 detectron2://ImageNetPretrained/MSRA/R-101.pkl",
                  "detectron2 configs (LVISv0.5-InstanceSegmentation mask_rcnn_R_101_FPN_1x.yaml MODEL.WEIGHTS)"),),
    ),
    WeightFile(
        url=_D2 + "ImageNetPretrained/FAIR/X-101-32x8d.pkl", what="ResNeXt-101 32x8d, ImageNet-1k (FAIR, Caffe2)",
        notes="detectron2's X-101-32x8d configs: PIXEL_STD [57.375, 57.120, 58.395], RESNETS.STRIDE_IN_1X1 False, "
              "NUM_GROUPS 32, WIDTH_PER_GROUP 8",
        uses=(Use("detectron2/imagenet/x101_32x8d", "detectron2 detectron2://ImageNetPretrained/FAIR/X-101-32x8d.pkl",
                  "detectron2 configs (LVISv0.5-InstanceSegmentation mask_rcnn_X_101_32x8d_FPN_1x.yaml MODEL.WEIGHTS)"),),
    ),
    WeightFile(
        url=_D2 + "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x/137849600/model_final_f10217.pkl",
        what="Mask R-CNN R50-FPN 3x, COCO (detectron2 model zoo)",
        notes="detectron2 checkpoint pickle (80 COCO classes); MSRA R-50 conventions",
        uses=(Use("detectron2/coco/mask_rcnn_r50_fpn", "detectron2 model zoo COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x",
                  "detectron2 model_zoo.py (COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x)"),),
    ),
    WeightFile(
        url=_D2 + "COCO-Detection/faster_rcnn_R_50_FPN_3x/137849458/model_final_280758.pkl",
        what="Faster R-CNN R50-FPN 3x, COCO (detectron2 model zoo)",
        notes="detectron2 checkpoint pickle (80 COCO classes); MSRA R-50 conventions",
        uses=(Use("detectron2/coco/faster_rcnn_r50_fpn", "detectron2 model zoo COCO-Detection/faster_rcnn_R_50_FPN_3x",
                  "detectron2 model_zoo.py (COCO-Detection/faster_rcnn_R_50_FPN_3x)"),),
    ),
)


def by_id(files: tuple[WeightFile, ...] | None = None) -> dict[str, WeightFile]:
    """weight id -> the file that serves it."""
    out: dict[str, WeightFile] = {}
    for f in FILES if files is None else files:
        for u in f.uses:
            if u.id in out:
                raise ValueError(f"weight id {u.id} is served by two files: {out[u.id].url} and {f.url}")
            out[u.id] = f
    return out


def check_weight_id(weight_id: str, *, where: str | None = None, key: str | None = None) -> str:
    if not isinstance(weight_id, str) or not WEIGHT_ID_RE.match(weight_id):
        raise LtbenchError(f"{weight_id!r} is not a weight id", path=where, key=key, expected=WEIGHT_ID_FORM)
    return weight_id


def imagenet_key(backbone: str) -> str:
    """``r50_fpn`` -> ``r50``; ``x101_64x4d_dcn_fpn`` -> ``x101_64x4d`` (DCN adds offsets, initialised to zero)."""
    return "_".join(p for p in backbone.split("_") if p not in ("fpn", "dcn"))


def weight_id(run_config: dict) -> str | None:
    """The weight id a run's initialisation needs, or None (smoke scale, ``pretrain`` lvis / none)."""
    if run_config.get("scale") != "paper":
        return None
    pretrain = run_config.get("pretrain", "imagenet")
    if pretrain not in KINDS:
        return None
    framework = run_config.get("framework")
    if framework not in FRAMEWORKS:
        raise LtbenchError(f"run config has framework {framework!r}", key="framework",
                           expected="one of " + ", ".join(FRAMEWORKS))
    backbone = str(run_config.get("backbone") or "")
    if not backbone:
        raise LtbenchError("run config has no backbone", key="backbone", expected="e.g. r50_fpn")
    if pretrain == "imagenet":
        return f"{framework}/imagenet/{imagenet_key(backbone)}"
    detector = str(run_config.get("detector") or "")
    if not detector:
        raise LtbenchError("run config has no detector", key="detector", expected="e.g. faster_rcnn")
    return f"{framework}/coco/{detector}_{backbone}"
