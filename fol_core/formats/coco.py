"""COCO detection: annotations.json (bbox = [x, y, width, height] in pixels, 1-based ids, categories by
label) and images/FILE."""

from __future__ import annotations

import json
from pathlib import Path

from ..result import Box
from . import AnnotatedImage, ImageFiles, category_list, put_images

ANNOTATIONS = "annotations.json"
IMAGES = "images"


def to_coco(items: list[AnnotatedImage], categories: list[str] = ()) -> dict:
    cat_id = {name: i + 1 for i, name in enumerate(category_list(items, categories))}
    images, annotations = [], []
    for image_id, item in enumerate(items, start=1):
        images.append({"id": image_id, "file_name": item.file_name, "width": item.width, "height": item.height})
        for b in item.boxes:
            w, h = b.x1 - b.x0, b.y1 - b.y0
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": cat_id[b.label],
                "bbox": [round(b.x0, 2), round(b.y0, 2), round(w, 2), round(h, 2)],
                "area": round(w * h, 2), "iscrowd": 0, "score": round(b.score, 4),
            })
    return {
        "info": {"description": "boxes from fol (fast unsupervised object localization)"},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": n, "supercategory": "object"} for n, i in cat_id.items()],
    }


def from_coco(data: dict) -> list[AnnotatedImage]:
    names = {c["id"]: c["name"] for c in data["categories"]}
    items = {im["id"]: AnnotatedImage(im["file_name"], im["width"], im["height"]) for im in data["images"]}
    for a in data["annotations"]:
        x, y, w, h = a["bbox"]
        items[a["image_id"]].boxes.append(Box(x, y, x + w, y + h, names[a["category_id"]], -1, a.get("score", 1.0), "coco"))
    return list(items.values())


def write(items: list[AnnotatedImage], path: str | Path, categories: list[str] = ()) -> Path:
    """One annotation file."""
    path = Path(path)
    path.write_text(json.dumps(to_coco(items, categories), indent=1), encoding="utf-8")
    return path


def write_dataset(items: list[AnnotatedImage], root: str | Path, categories: list[str],
                  images: ImageFiles | None = None) -> Path:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    write(items, root / ANNOTATIONS, categories)
    if images is not None:
        put_images(items, root / IMAGES, images)
    return root


def read_dataset(root: str | Path) -> list[AnnotatedImage]:
    return read(Path(root) / ANNOTATIONS)


def read(path: str | Path) -> list[AnnotatedImage]:
    return from_coco(json.loads(Path(path).read_text(encoding="utf-8")))
