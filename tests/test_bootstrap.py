"""Annotation bootstrap on the real model and the real photos in examples/: label maps, sources, safe paths,
pre-labeling (resumable), the review functions and the four exports read back by real readers."""

from __future__ import annotations

import csv
import json
import shutil
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import datasets
import pytest
from PIL import Image
from pycocotools.coco import COCO
from torchvision.datasets import VOCDetection

from fol_core import annotator
from fol_core.bootstrap import export as exp
from fol_core.bootstrap import hierarchy, paths, review
from fol_core.bootstrap.labelmap import LabelMap, LabelMapError, load_label_map
from fol_core.bootstrap.prelabel import open_run, run_prelabel
from fol_core.bootstrap.project import Project, ProjectError
from fol_core.bootstrap.sources import FolderSource, open_source, source_spec
from fol_core.formats import yolo
from fol_core.imagenet import classes, resolve_class
from fol_core.result import Box

CATS = {resolve_class(n) for n in ("tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat")}
MAP = """
labels:
  cat: [domestic cat]
  dog: [dog]
  cup: [cup, espresso, coffee mug]
threshold: 0.1
"""


# --- label maps and the WordNet hierarchy -------------------------------------------------------

def test_wordnet_ancestor_means_every_descendant():
    dogs = LabelMap.parse("dog: [dog]").labels["dog"]
    assert len(dogs) == 118  # WordNet 3.0: the ImageNet classes below dog.n.01
    for breed in ("golden retriever", "Chihuahua", "Siberian husky", "pug"):
        assert resolve_class(breed) in dogs
    for other in ("timber wolf", "tabby", "red fox"):
        assert resolve_class(other) not in dogs
    golden = classes()[resolve_class("golden retriever")].wnid
    assert "n02084071" in hierarchy.ancestors(golden)  # dog, domestic dog
    assert hierarchy.lemmas("n02084071")[0] == "dog"


def test_label_entries_by_index_wnid_name_and_ancestor():
    lm = LabelMap.parse(json.dumps({"labels": {
        "cat": ["domestic cat"], "birds": ["wordnet:bird"], "mixed": [282, "n02123045", "Persian cat", "hog"],
    }, "threshold": 0.2}))
    assert set(lm.labels["cat"]) == CATS
    assert lm.labels["mixed"] == (282, 281, 283, 341)  # in the order written, no repeats
    assert resolve_class("goldfinch") in lm.labels["birds"] and resolve_class("tabby") not in lm.labels["birds"]
    assert lm.threshold == 0.2
    assert "cat: tabby, tiger cat, Persian cat, Siamese cat, ... (5 classes)" in lm.describe()
    assert LabelMap.parse(lm.to_yaml()).labels == lm.labels  # the map survives a round trip


def test_label_map_errors_are_one_line():
    for text, words in [("cat: [no such thing]", "no such thing"), ("- a\n- b", "mapping"), ("x: [a", "YAML"),
                        ("{}", "no labels"), ("cat: [tabby]\nthreshold: high", "threshold")]:
        with pytest.raises(LabelMapError, match=words) as info:
            LabelMap.parse(text)
        assert "\n" not in str(info.value)


def test_label_scores_sum_their_classes(model, examples_dir):
    probs = model.predict(Image.open(examples_dir / "chelsea.png"))
    lm = LabelMap.parse(MAP)
    scores = lm.scores(probs)
    assert scores["cat"] == pytest.approx(float(probs[sorted(CATS)].sum()), rel=1e-5)
    assert scores["cat"] > 0.5 > scores["dog"]
    assert lm.best_class("cat", probs) in CATS
    default = load_label_map(None)
    assert len(default.labels) == 998 and default.labels["crane"] == (134, 517)  # two classes share a name
    dogs = set(LabelMap.parse("d: [dog]").labels["d"])
    assert len(default.candidates("dog")) == 118 and all(set(default.labels[n]) <= dogs for n in default.candidates("dog"))


# --- sources and safe paths ---------------------------------------------------------------------

@pytest.fixture
def tricky_folder(tmp_path, examples_dir) -> Path:
    """Real photos under awkward names: same names in two folders, spaces, unicode, label folders."""
    root = tmp_path / "photos"
    for rel, src in [
        ("cat/photo.png", "chelsea.png"),
        ("cup/photo.png", "coffee.png"),
        ("cup/Photo.PNG", "coffee.png"),
        ("hog/my cat ü.png", "chelsea.png"),
        ("rocket.jpg", "rocket.jpg"),
    ]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(examples_dir / src, root / rel)
    (root / ".hidden").mkdir()
    shutil.copy(examples_dir / "coffee.png", root / ".hidden" / "skip.png")
    (root / "notes.txt").write_text("not an image")
    return root


def test_folder_source_is_recursive_with_folder_labels(tricky_folder):
    items = list(FolderSource(tricky_folder, "folders").items())
    assert [(i.key, i.label) for i in items] == [
        ("rocket.jpg", None), ("cat/photo.png", "cat"), ("cup/Photo.PNG", "cup"), ("cup/photo.png", "cup"),
        ("hog/my cat ü.png", "hog"),
    ]


def test_csv_labels_match_by_path_or_unique_file_name(tricky_folder, tmp_path):
    table = tmp_path / "labels.csv"
    with table.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "label"])
        w.writerows([["rocket.jpg", "missile"], ["cup/photo.png", "cup"], ["photo.png", "ambiguous"]])
    labels = {i.key: i.label for i in FolderSource(tricky_folder, str(table)).items()}
    assert labels["rocket.jpg"] == "missile" and labels["cup/photo.png"] == "cup"
    assert labels["cat/photo.png"] is None  # "photo.png" names two files: not guessed


def test_flat_names_are_safe_and_unique():
    taken: set[str] = set()
    names = [paths.unique_name(n, taken) for n in (
        "a/photo.png", "b/photo.png", "A/Photo.png", "../../etc/passwd.png", "/abs/x.jpg", "C:\\win\\y.JPG",
        "ü ni/co de.png", "x" * 300 + ".png",
    )]
    assert names[:2] == ["a__photo.png", "b__photo.png"]
    assert names[2].startswith("A__Photo-")  # same name but for case: a hash suffix
    assert names[3] == "etc__passwd.png" and names[4] == "abs__x.jpg" and names[5] == "win__y.jpg"
    assert names[6] == "ü ni__co de.png"
    assert len(names[7].encode()) < 140
    assert all("/" not in n and "\\" not in n and not n.startswith(".") for n in names)
    assert len({n.casefold() for n in names}) == len(names)
    with pytest.raises(paths.UnsafePathError):
        paths.safe_join("/tmp/x", "..", "y")


def test_zip_slip_is_contained(tmp_path, examples_dir):
    archive = tmp_path / "upload.zip"
    photo = (examples_dir / "chelsea.png").read_bytes()
    with zipfile.ZipFile(archive, "w") as z:
        for name in ("../evil.png", "/abs/evil2.png", "a/../../evil3.png", "ok/cat.png", "ok/readme.sh"):
            z.writestr(name, photo)
    dest = tmp_path / "project" / "source"
    written = paths.extract_zip(archive, dest)
    assert sorted(p.relative_to(dest).as_posix() for p in written) == ["a/evil3.png", "abs/evil2.png", "evil.png", "ok/cat.png"]
    assert not list(tmp_path.glob("evil*")) and not (tmp_path / "project" / "evil3.png").exists()


def test_zip_bombs_are_refused(tmp_path, monkeypatch, examples_dir):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("huge.png", b"\0" * 5_000_000)
    with pytest.raises(paths.UnsafePathError, match="bomb"):
        paths.extract_zip(bomb, tmp_path / "out1")
    many = tmp_path / "big.zip"
    with zipfile.ZipFile(many, "w") as z:
        for i in range(3):
            z.write(examples_dir / "coffee.png", f"c{i}.png")
    monkeypatch.setattr(paths, "ZIP_MAX_BYTES", 500_000)  # the running total, counted while extracting
    with pytest.raises(paths.UnsafePathError, match="uncompressed"):
        paths.extract_zip(many, tmp_path / "out2")


def test_saved_dataset_and_imagefolder_sources(tmp_path, examples_dir):
    feats = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["cat", "cup"])})
    ds = datasets.Dataset.from_dict(
        {"image": [str(examples_dir / "chelsea.png"), str(examples_dir / "coffee.png")], "label": [0, 1]}, features=feats)
    ds.save_to_disk(str(tmp_path / "saved"))
    src = open_source(source_spec(str(tmp_path / "saved"), image_labels="folders"))
    items = list(src.items())
    assert [(i.key, i.name, i.label) for i in items] == [("train/0", "train/chelsea.png", "cat"), ("train/1", "train/coffee.png", "cup")]
    assert src.open("train/1").size == Image.open(examples_dir / "coffee.png").size
    folder = tmp_path / "imgs"
    for label, name in (("cat", "chelsea.png"), ("cup", "coffee.png")):
        (folder / label).mkdir(parents=True)
        shutil.copy(examples_dir / name, folder / label / name)
    spec = source_spec(f"hf:{folder}", image_labels="label")
    assert spec["mode"] == "imagefolder"
    src = open_source(spec, tmp_path / "project")
    assert sorted(i.label for i in src.items()) == ["cat", "cup"]
    assert (tmp_path / "project" / ".cache").is_dir()  # the Arrow cache stays in the project's folder


# --- project folders --------------------------------------------------------------------------

def test_a_project_folder_is_never_taken_over(tmp_path, tricky_folder, examples_dir):
    Project.create(tmp_path / "p", source_spec(str(tricky_folder))).close()
    Project.create(tmp_path / "p", source_spec(str(tricky_folder))).close()  # same source: reopened
    with pytest.raises(ProjectError, match="holds the project of"):
        Project.create(tmp_path / "p", source_spec(str(examples_dir)))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(ProjectError, match="not empty"):
        Project.create(tmp_path / "mine", source_spec(str(examples_dir)))
    Project.create(tmp_path / "p", source_spec(str(examples_dir)), overwrite=True).close()


# --- pre-labeling, review and export on the examples --------------------------------------------

@pytest.fixture(scope="module")
def prelabeled(tmp_path_factory, model, examples_dir):
    """The examples (plus a label-folder copy) pre-labeled with Grad-CAM and a user map, in two runs."""
    root = tmp_path_factory.mktemp("src")
    for name in ("chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png"):
        shutil.copy(examples_dir / name, root / name)
    (root / "dog").mkdir()
    shutil.copy(examples_dir / "chelsea.png", root / "dog" / "chelsea.png")  # a cat filed under "dog"
    out = tmp_path_factory.mktemp("exports") / "demo project"
    project, new = open_run(str(root), str(out), image_labels="folders")
    assert new == 5
    first = run_prelabel(project, model, "gradcam", label_map=LabelMap.parse(MAP), limit=2)
    assert (first.done, first.remaining) == (2, 3)
    project.close()
    project, new = open_run(str(root), str(out), image_labels="folders")  # started again: resumes
    assert new == 0
    second = run_prelabel(project, model, "gradcam")
    assert second.done == 3 and second.remaining == 0
    assert run_prelabel(project, model, "gradcam").done == 0  # nothing is redone
    return project


def test_prelabel_names_boxes_with_user_labels(prelabeled):
    recs = {r.key: r for r in prelabeled.images()}
    assert len(recs) == 5 and all(r.stage != "new" for r in recs.values())
    cat = recs["chelsea.png"]
    assert cat.stage == "proposed" and [b.label for b in cat.proposals] == ["cat"]
    assert cat.proposals[0].class_index in CATS and cat.confidence > 0.5
    assert recs["coffee.png"].proposals[0].label == "cup"
    # no label of the map in the rocket or the astronaut: "no object found", no forced box
    assert recs["rocket.jpg"].stage == "no_object" and recs["rocket.jpg"].proposals == []
    assert recs["astronaut.png"].stage == "no_object"
    # the folder says "dog": the class query localizes a dog class, even though the photo is a cat
    filed = recs["dog/chelsea.png"]
    assert filed.image_label == "dog" and [b.label for b in filed.proposals] == ["dog"]
    assert filed.proposals[0].class_index in LabelMap.parse(MAP).labels["dog"]
    for r in recs.values():
        for b in r.proposals:
            assert 0 <= b.x0 < b.x1 <= r.width and 0 <= b.y0 < b.y1 <= r.height


def test_review_queue_sorts_least_sure_first_and_saves_decisions(prelabeled):
    state = review.start(prelabeled.folder, order="confidence", status="pending")
    confidences = [prelabeled.image(i).confidence for i in state["ids"]]
    assert confidences == sorted(confidences) and len(state["ids"]) == 5
    view = review.current(state)
    assert view.position == "1 / 5" and view.counts["pending"] == 5
    state = review.jump(state, "coffee")
    view = review.current(state)
    assert view.record.file_name == "coffee.png"
    # nudge the proposed box 10 display pixels right, relabel it, add one, then accept
    boxes = view.annotator["boxes"]
    boxes[0] = {**boxes[0], "xmin": boxes[0]["xmin"] + 10, "label": "mug"}
    boxes.append({"xmin": 5, "ymin": 6, "xmax": 50, "ymax": 60, "label": "spoon", "color": (0, 0, 0)})
    boxes.append({"xmin": 100, "ymin": 100, "xmax": 150, "ymax": 150, "label": ""})  # drawn, not named
    after = review.decide(state, "accept", {"image": None, "boxes": boxes})
    assert after["pos"] == state["pos"] + 1
    saved = prelabeled.image(view.record.id)
    assert saved.review == "accepted" and [b.label for b in saved.boxes] == ["mug", "spoon", "cup"]
    assert view.scale == pytest.approx(600 / 640)  # shown enlarged: display pixels scale back to the photo's
    assert saved.boxes[0].x0 == pytest.approx(view.record.proposals[0].x0 + 10 * view.scale, abs=1)
    assert (saved.boxes[1].x0, saved.boxes[1].y1) == pytest.approx((5 * view.scale, 60 * view.scale), abs=0.01)
    # accept the cat untouched: the exact proposed coordinates are kept
    state = review.jump(state, "chelsea.png")
    cat = review.current(state)
    review.decide(state, "accept", cat.annotator)
    assert prelabeled.image(cat.record.id).boxes == cat.record.proposals
    state = review.jump(state, "rocket")
    review.decide(state, "reject")
    state = review.jump(state, "astronaut")
    review.decide(state, "skip")
    counts = prelabeled.counts()
    assert (counts["accepted"], counts["rejected"], counts["pending"]) == (2, 1, 2)
    assert [d["action"] for d in prelabeled.decisions()] == ["accept", "accept", "reject", "skip"]
    assert review.move(review.move(state, 100), -1)["pos"] == len(state["ids"]) - 2
    with pytest.raises(ProjectError):
        review.jump(state, "no-such-file")


def test_annotator_boxes_scale_back_to_a_large_photos_pixels(examples_dir):
    photo = Image.open(examples_dir / "coffee.png").convert("RGB").resize((4000, 3000))
    shown, scale = annotator.display_copy(photo)
    assert max(shown.size) == annotator.DISPLAY_MAX and scale == pytest.approx(2.5)
    truth = [Box(1000.0, 500.0, 3000.0, 2500.0, "cup", 968, 0.9, "fol")]
    dicts = annotator.to_annotator(truth, scale)
    assert dicts[0]["xmin"] == 400 and dicts[0]["ymax"] == 1000
    moved = [{**dicts[0], "xmin": 420, "xmax": 1700}]  # nudged, and dragged past the right edge
    back = annotator.from_annotator(moved, scale, 4000, 3000, truth)
    assert (back[0].x0, back[0].y0, back[0].x1, back[0].y1) == (1050.0, 500.0, 4000.0, 2500.0)
    assert annotator.from_annotator(dicts, scale, 4000, 3000, truth) == truth  # untouched: exact
    small, scale = annotator.display_copy(Image.open(examples_dir / "chelsea.png"))  # small photos are enlarged
    assert small.size == (640, 426) and scale == pytest.approx(451 / 640)
    drawn = annotator.from_annotator([{"xmin": 64, "ymin": 0, "xmax": 640, "ymax": 426, "label": "cat"}], scale, 451, 300)
    assert (drawn[0].x0, drawn[0].x1, drawn[0].y1) == pytest.approx((45.1, 451.0, 300.0), abs=0.3)
    assert annotator.display_copy(photo.resize((1000, 800)))[1] == 1.0


def test_exports_read_back_in_every_reader(prelabeled, tmp_path):
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
        assert (voc / "JPEGImages" / name).read_bytes() == prelabeled.source().read_bytes(name)
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
    for item in yolo.read(out["yolo"]):
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


def test_an_export_never_overwrites_another_projects_files(prelabeled, tmp_path):
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


def test_cli_prelabel_resumes_and_export_refuses_other_folders(tmp_path, examples_dir, model, capsys):
    from fol_core.cli import main

    src = tmp_path / "src"
    src.mkdir()
    for name in ("chelsea.png", "coffee.png"):
        shutil.copy(examples_dir / name, src / name)
    out = tmp_path / "proj"
    assert main(["prelabel", str(src), "--out", str(out), "--method", "cam", "--limit", "1"]) == 0
    text = capsys.readouterr().out
    assert "2 images (2 new), 2 to pre-label" in text and "1 images in" in text and "1 left" in text
    assert main(["prelabel", str(src), "--out", str(out), "--method", "cam"]) == 0
    assert "2 images (0 new), 1 to pre-label" in capsys.readouterr().out
    other = tmp_path / "other"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    assert main(["prelabel", str(src), "--out", str(other)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "not empty" in err
    assert main(["export", str(out)]) == 2
    assert "nothing to export" in capsys.readouterr().err
    assert main(["export", str(out), "--include-proposals", "--format", "coco", "yolo"]) == 0
    assert len(COCO(str(out / "coco" / "annotations.json")).getImgIds()) == 2
    assert main(["export", str(out), "--include-proposals", "--format", "voc", "--dest", str(other)]) == 2
    assert "choose another folder, or overwrite" in capsys.readouterr().err
    assert sorted(p.name for p in other.iterdir()) == ["thesis.tex"]


def test_zip_upload_resumes_from_a_new_temporary_path(tmp_path, examples_dir, model):
    from fol_core.bootstrap.prelabel import prelabel_folder

    archive = tmp_path / "upload-1.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(examples_dir / "chelsea.png", "pets/chelsea.png")
        z.write(examples_dir / "coffee.png", "../coffee.png")
    project, summary, new = prelabel_folder(str(archive), tmp_path / "p", "cat: [domestic cat]", method="cam", limit=1)
    assert (new, summary.done, summary.remaining) == (2, 1, 1)
    assert sorted(r.key for r in project.images()) == ["coffee.png", "pets/chelsea.png"]
    again = tmp_path / "upload-2.zip"  # the same upload lands at another temporary path
    shutil.copy(archive, again)
    project, summary, new = prelabel_folder(str(again), tmp_path / "p", "", method="cam")
    assert (new, summary.done, summary.remaining) == (0, 1, 0)
    assert project.label_map.names == ["cat"]  # an empty map keeps the project's own


def test_a_saved_dataset_is_pre_labeled_and_exported_from_its_bytes(tmp_path, examples_dir, model):
    feats = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["cat", "cup"])})
    datasets.Dataset.from_dict(
        {"image": [str(examples_dir / "chelsea.png"), str(examples_dir / "coffee.png")], "label": [0, 1]}, features=feats,
    ).save_to_disk(str(tmp_path / "saved"))
    project, _ = open_run(str(tmp_path / "saved"), str(tmp_path / "p"), image_labels="label")
    run_prelabel(project, model, "cam", label_map=LabelMap.parse(MAP))
    recs = {r.key: r for r in project.images()}
    assert [b.label for b in recs["train/1"].proposals] == ["cup"] and recs["train/0"].image_label == "cat"
    path = exp.export(project, "voc", include_proposals=True)
    assert sorted(p.name for p in (path / "JPEGImages").iterdir()) == ["train__chelsea.png", "train__coffee.png"]
    assert (path / "JPEGImages" / "train__coffee.png").read_bytes() == (examples_dir / "coffee.png").read_bytes()


def test_folder_source_reads_links_inside_and_refuses_keys_that_climb_out(tmp_path, examples_dir):
    (tmp_path / "cat.png").symlink_to(examples_dir / "chelsea.png")
    source = FolderSource(tmp_path)
    assert [item.key for item in source.items()] == ["cat.png"]
    assert source.read_bytes("cat.png") == (examples_dir / "chelsea.png").read_bytes()
    for key in ("../secret.png", "/etc/passwd"):
        with pytest.raises(paths.UnsafePathError):
            source.read_bytes(key)
