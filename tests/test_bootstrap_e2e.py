"""End to end on 100 real ImageNet photos (../shared/data/imagenet-val-dev): pre-label with the CSV's image-level
labels, review a dozen, export all four formats and read each back with its real reader."""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET

import datasets
import pytest
import torch
from pycocotools.coco import COCO
from torchvision.datasets import VOCDetection

from fol_core.bootstrap import export as exp
from fol_core.bootstrap.prelabel import open_run, run_prelabel
from fol_core.formats import yolo
from fol_core.webapp import review

N = 100


@pytest.fixture(scope="module")
def dev_project(dev_set, model, tmp_path_factory):
    images = sorted((dev_set / "JPEGImages").iterdir())[:N]
    truth: dict[str, list[tuple]] = {}
    with (dev_set / "boxes.csv").open() as f:
        for row in csv.DictReader(f):
            truth.setdefault(row["image"], []).append((row["wnid"], *(float(row[k]) for k in ("xmin", "ymin", "xmax", "ymax"))))
    tmp = tmp_path_factory.mktemp("dev")
    labels = tmp / "labels.csv"
    with labels.open("w", newline="") as f:  # image-level labels: the WordNet id of each photo's class
        w = csv.writer(f)
        w.writerow(["image", "label"])
        for p in images:
            key = p.stem if p.stem in truth else p.name
            w.writerow([p.name, truth[key][0][0]])
    project, new = open_run(str(dev_set / "JPEGImages"), str(tmp / "dev project"), image_labels=str(labels))
    assert new == 500
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: as fast on 227 px photos, and far faster when other jobs share the CPU
    try:
        assert run_prelabel(project, model, "fol", limit=3).done == 3
        assert run_prelabel(project, model, "cam", limit=N - 3).done == N - 3
    finally:
        torch.set_num_threads(threads)
    return project, truth


def test_class_query_boxes_find_the_photos_objects(dev_project):
    project, truth = dev_project
    done = [r for r in project.images() if r.stage != "new"]
    assert len(done) == N and all(r.stage == "proposed" and r.proposals for r in done)
    hits = 0
    for r in done:
        gt = truth.get(r.key.rsplit(".", 1)[0]) or truth[r.key]
        best = max(_iou(b, g[1:]) for b in r.proposals for g in gt)
        hits += best >= 0.5
    assert hits >= 0.4 * N, f"only {hits} of {N} boxes overlap a true box by IoU >= 0.5"


def _iou(b, g) -> float:
    ix = max(0.0, min(b.x1, g[2]) - max(b.x0, g[0]))
    iy = max(0.0, min(b.y1, g[3]) - max(b.y0, g[1]))
    inter = ix * iy
    return inter / (b.area + (g[2] - g[0]) * (g[3] - g[1]) - inter)


def test_review_a_dozen_then_export_everything(dev_project):
    project, _ = dev_project
    state = review.start(project.folder, "confidence", "pending")
    for i in range(12):  # accept, nudging every third image's first box by 3 pixels
        view = review.current(state)
        boxes = view.annotator["boxes"]
        if i % 3 == 0:
            boxes[0] = {**boxes[0], "xmax": boxes[0]["xmax"] - 3}
        state = review.decide(state, "accept" if i != 11 else "reject", view.annotator)
    assert (project.counts()["accepted"], project.counts()["rejected"]) == (11, 1)
    expected = {a.file_name: a.boxes for _, a in project.annotated(include_proposals=True)}
    assert len(expected) == N - 1
    out = {f: exp.export(project, f, include_proposals=True) for f in exp.FORMATS}

    for name, boxes in expected.items():
        stem = name.rsplit(".", 1)[0]
        ann = VOCDetection.parse_voc_xml(ET.parse(out["voc"] / "Annotations" / f"{stem}.xml").getroot())["annotation"]
        got = [(o["name"], *(int(o["bndbox"][k]) for k in ("xmin", "ymin", "xmax", "ymax"))) for o in ann["object"]]
        assert got == [(b.label, round(b.x0) + 1, round(b.y0) + 1, round(b.x1), round(b.y1)) for b in boxes]
    assert len((out["voc"] / "ImageSets" / "Main" / "trainval.txt").read_text().split()) == N - 1

    api = COCO(str(out["coco"] / "annotations.json"))
    assert len(api.getImgIds()) == N - 1
    for img in api.loadImgs(api.getImgIds()):
        anns = api.loadAnns(api.getAnnIds(imgIds=img["id"]))
        want = expected[img["file_name"]]
        assert [api.loadCats(a["category_id"])[0]["name"] for a in anns] == [b.label for b in want]
        for a, b in zip(anns, want):
            x, y, w, h = a["bbox"]
            assert (x, y, x + w, y + h) == pytest.approx((b.x0, b.y0, b.x1, b.y1), abs=0.011)

    items = yolo.read_dataset(out["yolo"])
    assert len(items) == N - 1
    for item in items:
        want = expected[item.file_name]
        assert [b.label for b in item.boxes] == [b.label for b in want]
        for g, b in zip(item.boxes, want):
            assert (g.x0, g.y0, g.x1, g.y1) == pytest.approx((b.x0, b.y0, b.x1, b.y1), abs=0.01)

    ds = datasets.load_from_disk(str(out["hf"]))
    assert len(ds) == N - 1
    cats = ds.features["objects"]["category"].feature
    for row in ds.remove_columns("image"):
        want = expected[row["file_name"]]
        assert [cats.int2str(c) for c in row["objects"]["category"]] == [b.label for b in want]
        for (x, y, w, h), b in zip(row["objects"]["bbox"], want):
            assert (x, y, x + w, y + h) == pytest.approx((b.x0, b.y0, b.x1, b.y1), abs=1e-3)
    assert ds[0]["image"].size == (ds[0]["width"], ds[0]["height"])
