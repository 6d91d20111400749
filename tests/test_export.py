"""Exports of a project read back by real readers, and never over another project's files."""

from __future__ import annotations

import json
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import datasets
import pytest
from PIL import Image
from pycocotools.coco import COCO
from torchvision.datasets import VOCDetection

from fol_core.bootstrap import export as exp
from fol_core.errors import UserError
from fol_core.formats import yolo
from fol_core.images import load_image
from fol_core.webapp import review


@pytest.fixture(scope="module")
def reviewed(prelabeled):
    """The reviewer's decisions: coffee's box relabelled "mug" plus a drawn "spoon", the cat as proposed,
    the rocket rejected; the rest pending."""
    state = review.jump(review.start(prelabeled.folder, "name", "all"), "coffee")
    boxes = review.current(state).annotator["boxes"]
    boxes = [{**boxes[0], "label": "mug"}, {"xmin": 5, "ymin": 6, "xmax": 50, "ymax": 60, "label": "spoon"}]
    review.decide(state, "accept", {"boxes": boxes})
    state = review.jump(state, "chelsea.png")
    review.decide(state, "accept", review.current(state).annotator)
    review.decide(review.jump(state, "rocket"), "reject")
    return prelabeled


def test_exports_read_back_in_every_reader(reviewed, tmp_path):
    prelabeled = reviewed
    accepted = {r.file_name: r.boxes for r in prelabeled.images() if r.review == "accepted"}
    out = exp.export_all(prelabeled, list(exp.FORMATS))
    assert set(out) == {"voc", "coco", "yolo", "hf"} and all(p.parent == prelabeled.folder for p in out.values())
    # VOC, with torchvision's parser
    voc = out["voc"]
    assert (voc / "ImageSets" / "Main" / "trainval.txt").read_text().split() == ["chelsea", "coffee"]
    assert (voc / "ImageSets" / "Main" / "mug_trainval.txt").read_text().split() == ["chelsea", "-1", "coffee", "1"]
    for name, boxes in accepted.items():
        ann = VOCDetection.parse_voc_xml(ET.parse(voc / "Annotations" / f"{Path(name).stem}.xml").getroot())["annotation"]
        got = [(o["name"], *(int(o["bndbox"][k]) for k in ("xmin", "ymin", "xmax", "ymax"))) for o in ann["object"]]
        assert got == [(b.label, round(b.x0) + 1, round(b.y0) + 1, round(b.x1), round(b.y1)) for b in boxes]
        with Image.open(voc / "JPEGImages" / f"{Path(name).stem}.jpg") as jpeg:  # VOC holds JPEG only
            assert jpeg.format == "JPEG" and jpeg.size == Image.open(prelabeled.source().path(name)).size
    # COCO, with pycocotools
    api = COCO(str(out["coco"] / "annotations.json"))
    for img in api.loadImgs(api.getImgIds()):
        anns = api.loadAnns(api.getAnnIds(imgIds=img["id"]))
        got = [(api.loadCats(a["category_id"])[0]["name"], a["bbox"][0], a["bbox"][1],
                a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]) for a in anns]
        want = [(b.label, b.x0, b.y0, b.x1, b.y1) for b in accepted[img["file_name"]]]
        assert [g[0] for g in got] == [w[0] for w in want]
        assert [g[1:] for g in got] == [pytest.approx(w[1:], abs=0.011) for w in want]
        assert (out["coco"] / "images" / img["file_name"]).is_file()
    # YOLO
    names = (out["yolo"] / "classes.txt").read_text().splitlines()
    assert names[:1] == ["cat"] and "mug" in names
    for item in yolo.read_dataset(out["yolo"]):
        want = accepted[item.file_name]
        assert [b.label for b in item.boxes] == [b.label for b in want]
        for g, w in zip(item.boxes, want):
            assert (g.x0, g.y0, g.x1, g.y1) == pytest.approx((w.x0, w.y0, w.x1, w.y1), abs=0.01)
    # Hugging Face datasets
    ds = datasets.load_from_disk(str(out["hf"]))
    cats = ds.features["objects"]["category"].feature
    for row in ds:
        want = accepted[row["file_name"]]
        assert row["image"].size == (row["width"], row["height"])
        assert [cats.int2str(c) for c in row["objects"]["category"]] == [b.label for b in want]
        for (x, y, w, h), b in zip(row["objects"]["bbox"], want):
            assert (x, y, x + w, y + h) == pytest.approx((b.x0, b.y0, b.x1, b.y1), abs=1e-3)
    # with the proposals: the pending "dog" image joins; the rejected rocket never does
    with_props = exp.export(prelabeled, "coco", tmp_path / "all", include_proposals=True)
    files = {i["file_name"] for i in json.loads((with_props / "annotations.json").read_text())["images"]}
    assert files == {"chelsea.png", "coffee.png", "dog__chelsea.png"}


def test_an_export_never_overwrites_another_projects_files(reviewed, tmp_path):
    prelabeled = reviewed
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "annotations.json").write_text("{}")
    with pytest.raises(exp.ExportError, match="choose another folder, or overwrite"):
        exp.export(prelabeled, "coco", theirs)
    assert (theirs / "annotations.json").read_text() == "{}"
    (theirs / "keep.txt").write_text("mine")
    exp.export(prelabeled, "coco", theirs, overwrite=True)  # asked: writes its files, deletes nothing
    assert (theirs / "keep.txt").read_text() == "mine" and COCO(str(theirs / "annotations.json")).getImgIds()
    again = exp.export(prelabeled, "voc")  # its own earlier export: replaced whole
    assert again == prelabeled.folder / "voc" and not list(prelabeled.folder.glob(".voc.*"))


def test_a_photo_stored_sideways_or_deep_is_exported_as_the_reviewer_saw_it(tmp_path, examples_dir, model):
    """A phone photo stores its pixels sideways with an EXIF orientation; its boxes are in the upright photo the
    reviewer saw. It used to be copied as stored, so VOC said 600 x 400 over 400 x 600 pixels and every reader
    that ignores EXIF put the boxes in the wrong place. Now every format holds it upright. A 12-bit scan in a
    16-bit PNG was copied too, which 8-bit readers show white; a CMYK JPEG has 4 channels. Both are now the
    8-bit grey or RGB fol showed, under the same name. Other photos are still copied (or linked) as they are."""
    import numpy as np
    from PIL import ImageOps

    from fol_core.bootstrap.prelabel import open_run, run_prelabel

    src = tmp_path / "src"
    src.mkdir()
    upright = Image.open(examples_dir / "coffee.png").convert("RGB")  # 600 x 400
    exif = Image.Exif()
    exif[0x0112] = 6  # "turn 90 degrees clockwise to view"
    upright.transpose(Image.Transpose.ROTATE_90).save(src / "turned.jpg", exif=exif.tobytes(), quality=95)
    upright.save(src / "plain.jpg", quality=95)
    Image.fromarray(np.asarray(upright.convert("L")).astype(np.uint16) * 16).save(src / "deep.png")  # 12 bits
    upright.convert("CMYK").save(src / "cmyk.jpg", quality=95)
    alpha = Image.new("L", upright.size, 255)
    alpha.paste(0, (0, 0, 300, 400))  # the left half transparent: white for fol, black for OpenCV as stored
    clear = upright.copy()
    clear.putalpha(alpha)
    clear.save(src / "clear.png")
    project, _ = open_run(str(src), str(tmp_path / "p"))
    run_prelabel(project, model, "cam")
    out = {fmt: exp.export(project, fmt, include_proposals=True, link=True) for fmt in exp.FORMATS}
    shown = np.asarray(ImageOps.exif_transpose(Image.open(src / "turned.jpg"))).astype(int)
    files = {"voc": out["voc"] / "JPEGImages", "coco": out["coco"] / "images", "yolo": out["yolo"] / "images"}
    for folder in files.values():
        with Image.open(folder / "turned.jpg") as img:
            assert img.size == (600, 400) and img.getexif().get(0x0112, 1) == 1
            assert np.abs(np.asarray(img).astype(int) - shown).mean() < 3
        assert (folder / "plain.jpg").read_bytes() == (src / "plain.jpg").read_bytes()
        for name, mode in (("deep", "L"), ("cmyk", "RGB"), ("clear", "RGB")):
            seen = np.asarray(load_image(next(src.glob(f"{name}.*"))).convert(mode)).astype(int)
            exported = next(folder.glob(f"{name}.*"))
            with Image.open(exported) as img:
                assert img.mode == (mode if folder.name == "images" else "RGB")
                assert np.abs(np.asarray(img.convert(mode)).astype(int) - seen).mean() < 3
    assert (files["voc"] / "plain.jpg").stat().st_ino == (src / "plain.jpg").stat().st_ino  # --link still links
    ann = VOCDetection.parse_voc_xml(ET.parse(out["voc"] / "Annotations" / "turned.xml").getroot())["annotation"]
    assert (ann["size"]["width"], ann["size"]["height"]) == ("600", "400")
    api = COCO(str(out["coco"] / "annotations.json"))
    assert {(i["file_name"], i["width"], i["height"]) for i in api.loadImgs(api.getImgIds())} == {
        ("turned.jpg", 600, 400), ("plain.jpg", 600, 400), ("deep.png", 600, 400), ("cmyk.jpg", 600, 400), ("clear.png", 600, 400)}
    for row in datasets.load_from_disk(str(out["hf"])):
        assert row["image"].size == (row["width"], row["height"]) == (600, 400)
        assert row["image"].mode in ("RGB", "L")


def test_exports_at_once_into_one_folder_leave_one_whole_export(reviewed):
    """A double click on Export: the first writes the folder, the others are refused in one line (they crashed
    on each other's temporary folders before)."""
    results: list = []

    def run() -> None:
        try:
            results.append(exp.export(reviewed, "hf"))
        except UserError as exc:
            results.append(str(exc))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done = [r for r in results if isinstance(r, Path)]
    assert len(results) == 3 and done and all("is being exported by another run" in r for r in results
                                              if not isinstance(r, Path))
    assert len(datasets.load_from_disk(str(reviewed.folder / "hf"))) == len(reviewed.annotated(False))
