"""Hugging Face `datasets`: an `image` column and an `objects` column of boxes and categories (`save_to_disk`).

The layout of the Hub's object-detection datasets (e.g. cppe-5): `objects` holds, per image, the
lists `id`, `area`, `bbox` ([x, y, width, height] in pixels, COCO's convention) and `category`
(a ClassLabel with the label names).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

from ..result import Box
from . import AnnotatedImage, categories_of


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
    items: list[AnnotatedImage], image_bytes: Callable[[AnnotatedImage], bytes], categories: list[str] | None = None,
    cache_dir: str | Path | None = None,
):
    """A `datasets.Dataset` of the items; `image_bytes(item)` gives each image file's bytes.

    Rows are generated one at a time (images are not all held in memory) into Arrow files under
    `cache_dir` (default: datasets' own cache).
    """
    import datasets

    names = list(categories or categories_of(items))
    names += [n for n in categories_of(items) if n not in names]
    index = {n: i for i, n in enumerate(names)}

    def rows():
        next_id = 1
        for image_id, item in enumerate(items, start=1):
            objects = {"id": [], "area": [], "bbox": [], "category": []}
            for b in item.boxes:
                objects["id"].append(next_id)
                objects["area"].append(b.area)
                objects["bbox"].append([b.x0, b.y0, b.x1 - b.x0, b.y1 - b.y0])
                objects["category"].append(index[b.label])
                next_id += 1
            yield {
                "image": {"bytes": image_bytes(item), "path": item.file_name}, "image_id": image_id,
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


def write(
    items: list[AnnotatedImage], path: str | Path, image_bytes: Callable[[AnnotatedImage], bytes],
    categories: list[str] | None = None,
) -> Path:
    """save_to_disk at `path`; the intermediate Arrow cache lives in `path`.cache and is removed."""
    import shutil

    cache = Path(str(path) + ".cache")
    try:
        to_dataset(items, image_bytes, categories, cache).save_to_disk(str(path))
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return Path(path)


def read(path: str | Path) -> list[AnnotatedImage]:
    import datasets

    return from_dataset(datasets.load_from_disk(str(path)))
