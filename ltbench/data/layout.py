"""Where an image of an LVIS/COCO-format annotation file lives under the dataset's ``image_root``.

The one place that turns an image record into a path (``adapters.records.load_lvis_split`` for every
adapter, ``ltbench data subset``'s image list, COCO-LT's ``file_name``s):

- ``coco_url``, when present: its last two parts, e.g. ``http://images.cocodataset.org/val2017/000000266409.jpg``
  -> ``val2017/000000266409.jpg`` under the COCO 2017 image root (the folder holding ``train2017/`` and
  ``val2017/``). Real LVIS v0.5 and v1, COCO 2017 and the COCO-LT files have it. LVIS v0.5's ``file_name``
  (``COCO_val2014_000000266409.jpg``) is a COCO 2014 name: not the image's COCO 2017 file name
  (``000000266409.jpg``), and its ``val2014`` says nothing of the 2017 folder (COCO 2017's train2017 holds
  most of val2014's images); LVIS v1 has no ``file_name``; COCO 2017's (``000000266409.jpg``) lacks the folder.
- else ``file_name``, when it is a relative path under ``image_root`` (synthetic data: ``val/000003.png``):
  not absolute, no ``..``, and not a bare COCO 2014 name.
- else a ``LtbenchError`` naming the annotation file, the image (``images[id=N]``) and what was expected.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from os import PathLike
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from ltbench.errors import LtbenchError

#: a COCO 2014 file name (LVIS v0.5's ``file_name``), which is no path under the COCO 2017 image root
COCO_2014_NAME = re.compile(r"^COCO_(train|val)2014_\d+\.\w+$")

EXPECTED = ("coco_url (its last two parts, e.g. val2017/000000266409.jpg, are the path under the COCO image root) "
            "or a file_name relative to the dataset's image_root")


def image_relative_path(image: Mapping[str, Any], *, source: str | PathLike[str] | None = None) -> str:
    """The path of ``image`` (one entry of an annotation file's ``images``) relative to the image root.

    ``source`` names the annotation file in errors.
    """
    key = f"images[id={image.get('id')}]"

    def error(message: str, field: str | None = None, hint: str | None = None) -> LtbenchError:
        return LtbenchError(message, path=source, key=f"{key}.{field}" if field else key, expected=EXPECTED, hint=hint)

    url = image.get("coco_url")
    if url not in (None, ""):
        parts = [p for p in urlsplit(url).path.split("/") if p] if isinstance(url, str) else []
        if len(parts) < 2 or any(p in (".", "..") for p in parts[-2:]):
            raise error(f"coco_url {url!r} has no <folder>/<file> at its end", "coco_url")
        return "/".join(parts[-2:])
    name = image.get("file_name")
    if not isinstance(name, str) or not name:
        raise error("image has neither coco_url nor file_name")
    if COCO_2014_NAME.match(name):
        raise error(f"file_name {name!r} is a COCO 2014 name (LVIS v0.5), not a path under the COCO 2017 image root, "
                    "and the image has no coco_url to take it from", "file_name",
                    hint="use the annotation file as LVIS publishes it (its images carry coco_url)")
    if PurePosixPath(name).is_absolute() or ".." in PurePosixPath(name).parts:
        raise error(f"file_name {name!r} is not a relative path inside image_root (absolute, or with ..)", "file_name")
    return name
