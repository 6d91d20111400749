"""A Pascal VOC folder as evaluation samples: one sample per (image, label), its true boxes in pixel edges.

Labels map to ImageNet classes by WordNet id (as in imagenet-val-dev), or through a user label map:
a YAML/JSON file {user label: [ImageNet class names, indices or WordNet ids]} for datasets whose
labels are the user's own ("cat" = tabby, tiger cat, Persian cat, ...).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import UserError
from ..formats import voc
from ..imagenet import UnknownClassError, resolve_class
from ..images import load_image
from ..labelmap import LabelMap, LabelMapError
from .metrics import as_boxes

AGNOSTIC = "object"
"""The label of class-agnostic samples: every true box counts, whatever the classifier calls it."""
SPLITS = ("all", "calib", "test")
"""The fixed split of an image list: "calib" its lines at even 0-based positions, "test" the odd ones."""


@dataclass
class Sample:
    """One label of one image: the classes that count as it and its true boxes."""

    image_id: str
    path: Path
    label: str
    classes: tuple[int, ...]
    """ImageNet classes that count as this label (one for a WordNet id)."""
    boxes: np.ndarray
    """(n, 4) true boxes, pixel edges, 0-based (VOC xmin = 1 is x0 = 0)."""
    width: int
    height: int


@dataclass
class Dataset:
    root: Path
    samples: list[Sample]
    problems: list[str] = field(default_factory=list)
    """One line per annotation file, object name or image id that was skipped."""

    @property
    def n_images(self) -> int:
        return len({s.image_id for s in self.samples})


class DatasetError(UserError):
    """The folder is not a VOC dataset, or a label map cannot be used; the message is one line."""


def load_label_map(path: str | Path) -> dict[str, tuple[int, ...]]:
    """{user label: ImageNet classes} from the bootstrap's label-map file (YAML or JSON: names, synonyms,
    indices, WordNet ids or WordNet ancestors such as "dog")."""
    try:
        return LabelMap.load(path).labels
    except LabelMapError as exc:
        raise DatasetError(f"label map {path}: {exc}") from None


def split_ids(ids: list[str], split: str) -> list[str]:
    """The fixed calib/test split: even 0-based positions of the list calibrate, odd ones are scored."""
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    return ids if split == "all" else ids[split == "test" :: 2]


def load_dataset(root: str | Path, ids: list[str] | None = None, label_map: dict[str, tuple[int, ...]] | None = None,
                 imageset: str | None = None, agnostic: bool = False) -> Dataset:
    """Read the annotations of `ids` (default: image_ids(root)) into samples; bad files become problems.

    Objects are grouped by label; a label with no ImageNet class (and no entry in the label map) is
    reported once and its objects are left out. `agnostic`: one sample per image holding every object,
    whatever its name, explained as the classifier's top-1 class (classes empty).
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    if not (root / voc.ANNOTATIONS).is_dir():
        raise DatasetError(f"{root} is not a Pascal VOC folder: it has no {voc.ANNOTATIONS}/")
    if not any((root / voc.ANNOTATIONS).glob("*.xml")):
        raise DatasetError(f"{root}: {voc.ANNOTATIONS}/ holds no .xml file, so no box to score against")
    ids = voc.image_ids(root, imageset) if ids is None else ids
    data = Dataset(root, [])
    unknown: set[str] = set()
    for image_id in ids:
        xml = voc.annotation_path(root, image_id)
        try:
            item = voc.read(xml)
        except (OSError, ET.ParseError, ValueError, AttributeError, TypeError) as exc:  # missing, bad XML, no <size>
            data.problems.append(f"skipped {xml.name}: {str(exc).splitlines()[0] or type(exc).__name__}")
            continue
        path = voc.image_path(root, image_id, item.file_name)
        if path is None:
            data.problems.append(f"skipped {image_id}: no image in {root / voc.IMAGES}")
            continue
        groups: dict[str, list] = {}
        for b in item.boxes:
            groups.setdefault(AGNOSTIC if agnostic else b.label, []).append((b.x0, b.y0, b.x1, b.y1))
        for label, boxes in groups.items():
            classes = () if agnostic else _classes_of(label, label_map)
            if classes is None:
                if label not in unknown:
                    unknown.add(label)
                    where = ("in the label map" if label_map is not None else "among ImageNet's classes "
                             "(--labels maps it to some; --agnostic scores the boxes whatever the class)")
                    data.problems.append(f"skipped objects named {label!r}: not {where}")
                continue
            data.samples.append(Sample(image_id, path, label, classes, as_boxes(boxes), item.width, item.height))
    return data


def _classes_of(label: str, label_map: dict[str, tuple[int, ...]] | None) -> tuple[int, ...] | None:
    if label_map is not None:
        return label_map.get(label)
    try:
        return (resolve_class(label),)
    except UnknownClassError:
        return None


def build_mosaics(data: Dataset, folder: str | Path) -> Dataset:
    """Two-photo mosaics of the dataset's images, side by side at a common height, written to `folder`:
    consecutive images of different labels are paired; each mosaic gives one sample per photo (its
    label, its boxes moved into the mosaic), so both classes are named in the same photo."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    by_image: dict[str, list[Sample]] = {}
    for s in data.samples:
        by_image.setdefault(s.image_id, []).append(s)
    images = [group for group in by_image.values() if len(group) == 1]
    out = Dataset(folder, [], list(data.problems))
    i = 0
    while i + 1 < len(images):
        (a,), (b,) = images[i], images[i + 1]
        if set(a.classes) & set(b.classes):
            i += 1
            continue
        out.samples += _mosaic(a, b, folder)
        i += 2
    return out


def _mosaic(a: Sample, b: Sample, folder: Path) -> list[Sample]:
    height = min(a.height, b.height)
    scales = [height / a.height, height / b.height]
    widths = [round(s.width * k) for s, k in zip((a, b), scales)]
    canvas = Image.new("RGB", (sum(widths), height))
    for x, s, w in zip((0, widths[0]), (a, b), widths):
        canvas.paste(load_image(s.path).resize((w, height), Image.Resampling.BILINEAR), (x, 0))
    image_id = f"{a.image_id}+{b.image_id}"
    path = folder / f"{image_id}.png"
    canvas.save(path)
    samples = []
    for x, s, k in zip((0, widths[0]), (a, b), scales):
        boxes = s.boxes * k + np.array([x, 0, x, 0])
        samples.append(Sample(image_id, path, s.label, s.classes, boxes, canvas.width, height))
    return samples
