"""Hugging Face `datasets`: an `image` column and an `objects` column of boxes and categories (`save_to_disk`).

The layout of the Hub's object-detection datasets (e.g. cppe-5): `objects` holds, per image, the
lists `id`, `area`, `bbox` ([x, y, width, height] in pixels, COCO's convention) and `category`
(a ClassLabel with the label names).
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import numpy as np

from ..result import Box
from . import AnnotatedImage, FormatError, ImageFiles, category_list


def _span(lo: float, hi: float) -> tuple[float, float]:
    """(start, size) as float32 values whose sum stays within `hi` (rounded to float32, a box touching the
    photo's edge could end a hair past it, which strict readers refuse)."""
    start = np.float32(lo)
    size = np.float32(hi - float(start))
    while float(start) + float(size) > hi and size > 0:
        size = np.nextafter(size, np.float32(0))
    return float(start), float(size)


def features(categories: list[str]):
    import datasets

    return datasets.Features({
        "image": datasets.Image(),
        "image_id": datasets.Value("int64"),
        "file_name": datasets.Value("string"),
        "width": datasets.Value("int32"),
        "height": datasets.Value("int32"),
        "objects": datasets.Sequence({
            "id": datasets.Value("int64"),
            "area": datasets.Value("float32"),
            "bbox": datasets.Sequence(datasets.Value("float32"), length=4),
            "category": datasets.ClassLabel(names=categories),
        }),
    })


def to_dataset(
    items: list[AnnotatedImage], images: ImageFiles, categories: list[str] = (), cache_dir: str | Path | None = None,
):
    """A `datasets.Dataset` of the items, with each image file's bytes.

    Rows are generated one at a time (images are not all held in memory) into Arrow files under
    `cache_dir` (default: datasets' own cache).
    """
    import datasets

    names = category_list(items, categories)
    index = {n: i for i, n in enumerate(names)}

    def rows():
        next_id = 1
        for image_id, item in enumerate(items, start=1):
            objects = {"id": [], "area": [], "bbox": [], "category": []}
            for b in item.boxes:
                objects["id"].append(next_id)
                objects["area"].append(b.area)
                (x, w), (y, h) = _span(b.x0, b.x1), _span(b.y0, b.y1)
                objects["bbox"].append([x, y, w, h])
                objects["category"].append(index[b.label])
                next_id += 1
            yield {
                "image": {"bytes": images.read(item), "path": item.file_name}, "image_id": image_id,
                "file_name": item.file_name, "width": item.width, "height": item.height, "objects": objects,
            }

    return datasets.Dataset.from_generator(
        rows, features=features(names), cache_dir=str(cache_dir) if cache_dir else None,
        fingerprint=uuid.uuid4().hex,  # the rows are new each time: nothing to hash or reuse
    )


def from_dataset(ds) -> list[AnnotatedImage]:
    cats = ds.features["objects"]["category"].feature
    out = []
    for row in ds.remove_columns("image"):
        item = AnnotatedImage(row["file_name"], row["width"], row["height"])
        for (x, y, w, h), c in zip(row["objects"]["bbox"], row["objects"]["category"]):
            item.boxes.append(Box(x, y, x + w, y + h, cats.int2str(c), -1, 1.0, "hf"))
        out.append(item)
    return out


def write_dataset(items: list[AnnotatedImage], root: str | Path, categories: list[str],
                  images: ImageFiles | None = None) -> Path:
    """save_to_disk at `root` (the images are inside the dataset, so they are needed); the intermediate
    Arrow cache lives in `root`.cache and is removed."""
    if images is None:
        raise FormatError("a Hugging Face dataset holds its images: give the image files")
    cache = Path(str(root) + ".cache")
    try:
        to_dataset(items, images, categories, cache).save_to_disk(str(root))
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return Path(root)


def read_dataset(root: str | Path) -> list[AnnotatedImage]:
    import datasets

    return from_dataset(datasets.load_from_disk(str(root)))
