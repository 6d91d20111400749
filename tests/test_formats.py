"""Every format's writer read back by its own reader and by the real third-party readers: same boxes, same pixels."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import datasets
import numpy as np
import pytest
import yaml
from PIL import Image
from pycocotools.coco import COCO
from torchvision.datasets import VOCDetection

from fol_core.formats import AnnotatedImage, category_list, coco, hf, voc, yolo
from fol_core.result import Box


class Examples:
    """The image files of the example photos (formats.ImageFiles)."""

    def __init__(self, folder) -> None:
        self.folder = folder

    def read(self, item: AnnotatedImage) -> bytes:
        return (self.folder / item.file_name).read_bytes()

    def copy(self, item: AnnotatedImage, target) -> None:
        target.write_bytes(self.read(item))


@pytest.fixture
def items(examples_dir) -> list[AnnotatedImage]:
    """Two real photos with boxes in float pixels (as the engine makes them), one with two labels; one without boxes."""
    cat = Image.open(examples_dir / "chelsea.png")
    cup = Image.open(examples_dir / "coffee.png")
    rocket = Image.open(examples_dir / "rocket.jpg")
    return [
        AnnotatedImage("chelsea.png", *cat.size, [Box(36.24, 10.5, 451.0, 300.0, "cat", 285, 0.79, "fol")]),  # to the edge
        AnnotatedImage("coffee.png", *cup.size, [
            Box(77.68, 0.0, 479.46, 351.79, "cup", 968, 0.9, "gradcam"),
            Box(10.0, 20.0, 60.5, 90.25, "spoon", -1, 1.0, "review"),
        ]),
        AnnotatedImage("rocket.jpg", *rocket.size, []),
    ]


def _corners(item: AnnotatedImage) -> list[tuple]:
    return [(b.label, b.x0, b.y0, b.x1, b.y1) for b in item.boxes]


def assert_same(a: AnnotatedImage, b: AnnotatedImage, tol: float) -> None:
    """Same file, size, labels and corners (within tol pixels)."""
    assert (a.file_name, a.width, a.height) == (b.file_name, b.width, b.height)
    assert [c[0] for c in _corners(a)] == [c[0] for c in _corners(b)]
    for (_, *x), (_, *y) in zip(_corners(a), _corners(b)):
        assert x == pytest.approx(y, abs=tol)


def test_voc_round_trip_with_torchvision_parser(items, tmp_path):
    for item in items:
        path = voc.write(item, tmp_path / f"{item.file_name}.xml")
        parsed = VOCDetection.parse_voc_xml(ET.parse(path).getroot())["annotation"]
        assert parsed["filename"] == item.file_name
        assert (int(parsed["size"]["width"]), int(parsed["size"]["height"])) == (item.width, item.height)
        objects = parsed.get("object", [])
        assert len(objects) == len(item.boxes)
        for obj, b in zip(objects, item.boxes):
            bb = {k: int(v) for k, v in obj["bndbox"].items()}
            # VOC: integer, 1-based, inclusive: xmin = round(x0) + 1, xmax = round(x1)
            assert (obj["name"], bb["xmin"], bb["ymin"], bb["xmax"], bb["ymax"]) == (
                b.label, round(b.x0) + 1, round(b.y0) + 1, round(b.x1), round(b.y1))
        back = voc.read(path)
        for (l0, *a), (l1, *c) in zip(_corners(item), _corners(back)):
            assert l0 == l1 and all(abs(x - y) <= 0.5 for x, y in zip(a, c))


def test_coco_round_trip_with_pycocotools(items, tmp_path):
    path = coco.write(items, tmp_path / "annotations.json")
    api = COCO(str(path))
    assert {c["name"] for c in api.loadCats(api.getCatIds())} == {"cat", "cup", "spoon"}
    for img in api.loadImgs(api.getImgIds()):
        item = next(i for i in items if i.file_name == img["file_name"])
        assert (img["width"], img["height"]) == (item.width, item.height)
        anns = api.loadAnns(api.getAnnIds(imgIds=img["id"]))
        assert len(anns) == len(item.boxes)
        for a, b in zip(anns, item.boxes):
            x, y, w, h = a["bbox"]
            assert api.loadCats(a["category_id"])[0]["name"] == b.label
            assert (x, y, x + w, y + h) == pytest.approx((b.x0, b.y0, b.x1, b.y1), abs=0.011)
            assert a["area"] == pytest.approx(w * h, rel=1e-3) and a["iscrowd"] == 0
    for a, b in zip(coco.read(path), items):
        assert_same(a, b, 0.011)


def test_voc_dataset_is_read_by_torchvision(items, tmp_path, examples_dir):
    """VOC's readers open JPEGImages/ID.jpg and split the lists on whitespace: a PNG is written as JPEG, a JPEG
    as it is, and a name with a space gets an ID without one."""
    src = tmp_path / "src"
    src.mkdir()
    for item, name in zip(items, ("my cat.png", "coffee.png", "rocket.jpg")):
        (src / name).write_bytes((examples_dir / item.file_name).read_bytes())
    items = [AnnotatedImage("my cat.png", items[0].width, items[0].height, items[0].boxes), *items[1:]]
    root = voc.write_dataset(items, tmp_path / "VOCdevkit" / "VOC2012", ["cat", "cup", "spoon", "dog"], Examples(src))
    assert voc.image_ids(root, "trainval") == ["my_cat", "coffee", "rocket"]
    assert (root / "ImageSets" / "Main" / "dog_trainval.txt").read_text().split() == [
        "my_cat", "-1", "coffee", "-1", "rocket", "-1"]
    read = VOCDetection(str(tmp_path), year="2012", image_set="trainval")
    assert len(read) == 3
    for (photo, target), item in zip(read, items):
        ann = target["annotation"]
        assert photo.size == (item.width, item.height) and ann["filename"] == f"{'_'.join(item.file_name[:-4].split())}.jpg"
        got = [(o["name"], *(int(o["bndbox"][k]) for k in ("xmin", "ymin", "xmax", "ymax"))) for o in ann.get("object", [])]
        assert got == [(b.label, round(b.x0) + 1, round(b.y0) + 1, round(b.x1), round(b.y1)) for b in item.boxes]
    assert (root / "JPEGImages" / "rocket.jpg").read_bytes() == (src / "rocket.jpg").read_bytes()
    with Image.open(root / "JPEGImages" / "my_cat.jpg") as jpeg, Image.open(src / "my cat.png") as png:
        assert jpeg.format == "JPEG"
        assert np.abs(np.asarray(jpeg, dtype=float) - np.asarray(png.convert("RGB"), dtype=float)).mean() < 3
    for a, b in zip(voc.read_dataset(root, "trainval"), items):
        assert_same(a, AnnotatedImage(f"{'_'.join(b.file_name[:-4].split())}.jpg", b.width, b.height, b.boxes), 0.5)


def test_yolo_round_trip(items, tmp_path, examples_dir):
    yolo.write_dataset(items, tmp_path, ["cup", "cat"], Examples(examples_dir))
    assert (tmp_path / "classes.txt").read_text().split("\n")[:3] == ["cup", "cat", "spoon"]
    line = (tmp_path / "labels" / "chelsea.txt").read_text().split()
    w, h = items[0].width, items[0].height
    b = items[0].boxes[0]
    assert int(line[0]) == 1
    assert [float(v) for v in line[1:]] == pytest.approx(
        [(b.x0 + b.x1) / 2 / w, (b.y0 + b.y1) / 2 / h, (b.x1 - b.x0) / w, (b.y1 - b.y0) / h], abs=1e-6)
    assert (tmp_path / "labels" / "rocket.txt").read_text() == ""
    data = yaml.safe_load((tmp_path / "data.yaml").read_text())  # no `path`: Ultralytics reads next to data.yaml
    assert "path" not in data and (tmp_path / data["train"] / "chelsea.png").is_file() and data["nc"] == 3
    back = {i.file_name: i for i in yolo.read_dataset(tmp_path)}
    for item in items:
        assert_same(back[item.file_name], item, 1e-3)


def test_hf_round_trip_with_load_from_disk(items, tmp_path, examples_dir):
    path = hf.write_dataset(items, tmp_path / "ds", [], Examples(examples_dir))
    assert not (tmp_path / "ds.cache").exists(), "the intermediate cache is removed"
    ds = datasets.load_from_disk(str(path))
    assert len(ds) == 3 and set(ds.column_names) >= {"image", "objects"}
    assert ds.features["objects"]["category"].feature.names[:2] == ["cat", "cup"]
    for row, item in zip(ds, items):
        assert row["image"].size == (item.width, item.height)
        assert all(x + w <= item.width and y + h <= item.height for x, y, w, h in row["objects"]["bbox"])  # float32
        names = ds.features["objects"]["category"].feature
        got = [(names.int2str(c), x, y, x + w, y + h) for (x, y, w, h), c in zip(row["objects"]["bbox"], row["objects"]["category"])]
        for (l0, *a), (l1, *c) in zip(_corners(item), got):
            assert l0 == l1 and a == pytest.approx(c, abs=1e-3)
    for a, b in zip(hf.read_dataset(path), items):
        assert_same(a, b, 1e-3)


def test_class_ids_follow_the_label_list_not_the_images_exported(items, tmp_path, examples_dir):
    labels = ["spoon", "dog", "cup", "cat"]
    assert category_list(items, labels) == labels
    assert category_list(items, ["dog"]) == ["dog", "cat", "cup", "spoon"]  # then first use
    only_cat = items[:1]
    api = COCO(str(coco.write_dataset(only_cat, tmp_path / "coco", labels, Examples(examples_dir)) / "annotations.json"))
    assert [c["name"] for c in api.loadCats(api.getCatIds())] == labels
    assert api.loadAnns(api.getAnnIds())[0]["category_id"] == 4
    yolo.write_dataset(only_cat, tmp_path / "yolo", labels)
    assert (tmp_path / "yolo" / "labels" / "chelsea.txt").read_text().startswith("3 ")
