"""YOLO txt: one `labels/STEM.txt` per image, lines `class cx cy w h` normalized to [0, 1], plus the class list.

The folder layout is Ultralytics': `images/`, `labels/`, `classes.txt` (one name a line, in class
order) and `data.yaml` (`train`, `val`, `nc`, `names`). It names no `path`: Ultralytics then reads the
images next to data.yaml, wherever the folder is unzipped (`path: .` would be the working directory).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import yaml
from PIL import Image

from ..result import Box
from . import AnnotatedImage, ImageFiles, category_list, put_images

IMAGES = "images"
LABELS = "labels"


def _clip(v: float) -> float:
    return min(1.0, max(0.0, v))


def to_txt(item: AnnotatedImage, categories: list[str]) -> str:
    """The image's label file: `class cx cy w h` per box, normalized by the image size, 6 decimals."""
    index = {name: i for i, name in enumerate(categories)}
    lines = []
    for b in item.boxes:
        x0, x1 = _clip(b.x0 / item.width), _clip(b.x1 / item.width)
        y0, y1 = _clip(b.y0 / item.height), _clip(b.y1 / item.height)
        lines.append(f"{index[b.label]} {(x0 + x1) / 2:.6f} {(y0 + y1) / 2:.6f} {x1 - x0:.6f} {y1 - y0:.6f}")
    return "".join(line + "\n" for line in lines)


def from_txt(text: str, file_name: str, width: int, height: int, categories: list[str]) -> AnnotatedImage:
    item = AnnotatedImage(file_name, width, height)
    for line in text.splitlines():
        if not line.strip():
            continue
        c, cx, cy, w, h = line.split()[:5]
        cx, cy, w, h = float(cx) * width, float(cy) * height, float(w) * width, float(h) * height
        item.boxes.append(Box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, categories[int(c)], -1, 1.0, "yolo"))
    return item


def write_dataset(items: list[AnnotatedImage], root: str | Path, categories: list[str],
                  images: ImageFiles | None = None) -> Path:
    """labels/STEM.txt for every item, classes.txt, data.yaml and images/FILE."""
    root = Path(root)
    names = category_list(items, categories)
    (root / LABELS).mkdir(parents=True, exist_ok=True)
    for item in items:
        (root / LABELS / f"{PurePosixPath(item.file_name).stem}.txt").write_text(to_txt(item, names), encoding="utf-8")
    (root / "classes.txt").write_text("".join(n + "\n" for n in names), encoding="utf-8")
    data = {"train": IMAGES, "val": IMAGES, "nc": len(names), "names": dict(enumerate(names))}
    (root / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    if images is not None:
        put_images(items, root / IMAGES, images)
    return root


def read_dataset(root: str | Path) -> list[AnnotatedImage]:
    """Every image in images/ with its label file (none: no boxes); sizes read from the images."""
    root = Path(root)
    names = (root / "classes.txt").read_text(encoding="utf-8").splitlines()
    items = []
    for img in sorted((root / IMAGES).iterdir()):
        with Image.open(img) as im:
            width, height = im.size
        label = root / LABELS / f"{img.stem}.txt"
        text = label.read_text(encoding="utf-8") if label.is_file() else ""
        items.append(from_txt(text, img.name, width, height, names))
    return items
