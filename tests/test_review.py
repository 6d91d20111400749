"""The Review tab's queue: least sure first, decisions saved at once, boxes in the photo's pixels."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from fol_core import annotator
from fol_core.bootstrap import export as exp
from fol_core.bootstrap.prelabel import prelabel_folder
from fol_core.bootstrap.project import Project, ProjectError
from fol_core.bootstrap.sources import source_spec
from fol_core.result import Box
from fol_core.tsne import extract_features
from fol_core.webapp import review


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
    with pytest.raises(ProjectError, match="Box 3 has no label"):  # never a silent default label
        review.decide(state, "accept", {"image": view.annotator["image"], "boxes": boxes})
    boxes[2]["label"] = "3: saucer"  # the canvas's number is not part of the label
    with pytest.raises(ProjectError, match="not caught up"):  # the canvas holds another image
        review.decide(state, "accept", {"image": "/tmp/x/0000-1.jpg", "boxes": boxes})
    after = review.decide(state, "accept", {"image": view.annotator["image"], "boxes": boxes})
    assert after["pos"] == state["pos"] + 1
    saved = prelabeled.image(view.record.id)
    assert saved.review == "accepted" and [b.label for b in saved.boxes] == ["mug", "spoon", "saucer"]
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
    photo = Image.open(examples_dir / "coffee.png").convert("RGB").resize((4000, 2000))
    shown, scale = annotator.display_copy(photo)
    assert shown.size == (annotator.DISPLAY_MAX, annotator.DISPLAY_MAX_HEIGHT) and scale == pytest.approx(2.5)
    truth = [Box(1000.0, 500.0, 3000.0, 1500.0, "cup", 968, 0.9, "fol")]
    dicts = annotator.to_annotator(truth, scale)
    assert dicts[0]["xmin"] == 400 and dicts[0]["ymax"] == 600
    moved = [{**dicts[0], "xmin": 420, "xmax": 1700}]  # nudged, and dragged past the right edge
    back = annotator.from_annotator(moved, scale, 4000, 2000, truth)
    assert (back[0].x0, back[0].y0, back[0].x1, back[0].y1) == (1050.0, 500.0, 4000.0, 1500.0)
    assert annotator.from_annotator(dicts, scale, 4000, 2000, truth) == truth  # untouched: exact
    truth = [Box(1000.7, 500.3, 3000.2, 1500.9, "cup", 968, 0.9, "fol")]  # corners between display pixels
    relabelled = annotator.from_annotator([{**annotator.to_annotator(truth, scale)[0], "label": "mug"}], scale, 4000,
                                          2000, truth, method="review")
    assert relabelled == [Box(1000.7, 500.3, 3000.2, 1500.9, "mug", -1, 1.0, "review")]  # only the label changed
    small, scale = annotator.display_copy(Image.open(examples_dir / "chelsea.png"))  # small photos are enlarged
    assert small.size == (640, 426) and scale == pytest.approx(451 / 640)
    drawn = annotator.from_annotator([{"xmin": 64, "ymin": 0, "xmax": 640, "ymax": 426, "label": "cat"}], scale, 451, 300)
    assert (drawn[0].x0, drawn[0].x1, drawn[0].y1) == pytest.approx((45.1, 451.0, 300.0), abs=0.3)
    assert annotator.display_copy(photo.resize((1000, 800)))[1] == 1.0


@pytest.fixture
def proposed(tmp_path, examples_dir):
    """The example photos, each with two proposed boxes, as a project (no model needed)."""
    from fol_core.bootstrap.prelabel import open_run

    project, _ = open_run(str(examples_dir), str(tmp_path / "p"))
    for rec in project.images():
        width, height = project.source().open(rec.key).size
        project.save_prelabel(rec.id, stage="proposed", width=width, height=height, confidence=0.5, proposals=[
            Box(10.0, 10.0, 50.0, 60.0, "cat", 281, 0.5, "cam"), Box(100.0, 50.0, 200.0, 250.0, "cup", 968, 0.4, "cam")])
    yield project
    review.forget(project.folder)
    project.close()


def test_the_side_panel_relabels_deletes_and_undoes_box_edits(proposed):
    state = review.start(proposed.folder, order="name", status="all")
    view = review.current(state)
    state = review.enter(state, view)
    assert [d["label"] for d in view.annotator["boxes"]] == ["1: cat", "2: cup"]  # numbered as in the side list
    assert review.box_choices(state) == [("1: cat", 0), ("2: cup", 1)] and review.label_set(proposed)[:2] == ["cat", "cup"]
    state = review.relabel(review.select(state, 1), "tea pot")  # typed: a new label
    state = review.label_key(review.select(state, 0), 2)  # key 2: the project's second label
    assert [b["label"] for b in state["boxes"]] == ["cup", "tea pot"]
    state = review.delete_box(state, 1)
    assert [b["label"] for b in state["boxes"]] == ["cup"]
    state = review.undo_edit(state)
    assert [b["label"] for b in state["boxes"]] == ["cup", "tea pot"]
    state = review.undo_edit(review.undo_edit(state))
    assert [b["label"] for b in state["boxes"]] == ["cat", "cup"]
    with pytest.raises(ProjectError, match="No box edit"):
        review.undo_edit(state)
    with pytest.raises(ProjectError, match="No label 7"):
        review.label_key(state, 7)
    # the canvas: a box drawn (the annotator puts it first, unnumbered), one relabelled in its own dialog
    canvas = review.annotator_value(state)
    pressed = {**canvas, "boxes": [{"xmin": 5, "ymin": 5, "xmax": 5, "ymax": 5, "label": ""}, *canvas["boxes"]]}
    assert review.edited(state, pressed) == (state, False)  # the mouse went down: a redraw would end the drag
    canvas["boxes"] = [{"xmin": 5, "ymin": 5, "xmax": 40, "ymax": 40, "label": ""},
                       {**canvas["boxes"][0], "label": "dog"}, canvas["boxes"][1]]
    state, redraw = review.edited(state, canvas)  # drawn: its label dialog may be open, so no redraw yet
    assert not redraw and [b["label"] for b in state["boxes"]] == ["dog", "cup", ""] and state["sel"] == 2
    state, redraw = review.edited(state, {**canvas, "boxes": [{**canvas["boxes"][0], "label": "bowl"},
                                                              *canvas["boxes"][1:]]})
    assert redraw and [b["label"] for b in state["boxes"]] == ["dog", "cup", "bowl"]  # labelled: renumbered
    state = review.undo_edit(state)  # the drawn box unlabelled again
    assert review.edited(state, {**canvas, "image": "elsewhere/ffffffff-9.jpg"}) == (state, False)  # stale: ignored
    with pytest.raises(ProjectError, match="Box 3 has no label"):
        review.decide(state, "accept", review.annotator_value(state))
    state = review.relabel(state, "bowl")
    review.decide(state, "accept", review.annotator_value(state))
    rec = proposed.image(state["ids"][0])
    assert [b.label for b in rec.boxes] == ["dog", "cup", "bowl"] and rec.boxes[1] == rec.proposals[1]
    assert "bowl" in review.label_set(proposed)


def test_accepting_an_image_with_no_box_asks_first(proposed):
    state = review.start(proposed.folder, order="name", status="all")
    state = review.enter(state, review.current(state))
    empty = {**review.annotator_value(state), "boxes": []}  # both proposals deleted, or none found
    assert review.asks_first(state, "accept", review.annotator_value(state)) is None  # boxes: nothing to ask
    assert review.asks_first(state, "reject", empty) is None
    asked = review.asks_first(state, "accept", empty)
    assert asked["asked"] == state["ids"][0] and proposed.counts()["accepted"] == 0  # asked, nothing saved
    assert review.asks_first(asked, "accept", empty) is None  # the same key again: it goes through
    review.decide(asked, "accept", empty)
    assert proposed.image(state["ids"][0]).boxes == [] and proposed.counts()["accepted"] == 1


def test_the_note_says_what_the_classifier_saw_when_no_label_of_the_map_scored():
    from fol_core.bootstrap.project import ImageRecord

    top5 = [{"class_index": 478, "label": "carton", "probability": 0.41}, {"class_index": 692, "label": "packet",
                                                                          "probability": 0.2}]
    rec = ImageRecord(1, "a.jpg", "a.jpg", None, 300, 200, "no_object", None, 0.0, top5=top5,
                      label_scores={"bags": 0.0, "drinkware": 0.0})
    assert "the classifier sees: carton 41%, packet 20%" in review.describe(rec)
    named = ImageRecord(1, "a.jpg", "a.jpg", None, 300, 200, "proposed", None, 0.41, top5=top5,
                        label_scores={"carton": 0.41})
    assert "classifier sees" not in review.describe(named)  # no map: the label scores say it already


def test_undo_decision_goes_back_and_restores_the_image(proposed):
    state = review.start(proposed.folder, order="name", status="pending")
    first = review.enter(state, review.current(state))
    state = review.decide(first, "accept", review.annotator_value(first))
    second = review.enter(state, review.current(state))
    with pytest.raises(ProjectError, match="not caught up"):  # the canvas drew the previous photo
        review.decide(second, "reject", review.annotator_value(second), drawn=first["image"])
    state = review.decide(second, "reject", review.annotator_value(second), drawn=second["image"])
    assert proposed.counts()["accepted"] == 1 and proposed.counts()["rejected"] == 1
    state = review.undo_decision(state)
    assert state["pos"] == 1 and proposed.counts()["rejected"] == 0
    state = review.undo_decision(state)
    assert state["pos"] == 0 and proposed.counts()["pending"] == len(state["ids"])
    with pytest.raises(ProjectError, match="No decision"):
        review.undo_decision(state)
    assert [d["action"] for d in proposed.decisions()] == ["accept", "reject", "undo", "undo"]
    mine = review.enter(state, review.current(state))  # two tabs on one image: the other decides first
    other = review.enter(state, review.current(state))
    review.decide(other, "accept", review.annotator_value(other))
    with pytest.raises(ProjectError, match="accepted elsewhere"):
        review.decide(mine, "reject", review.annotator_value(mine))
    assert proposed.image(state["ids"][0]).review == "accepted"  # not overwritten unseen
    again = review.enter(mine, review.current(mine))  # shown again: the tab may now change it
    review.decide(again, "reject", review.annotator_value(again))
    assert proposed.image(state["ids"][0]).review == "rejected"


def test_export_names_the_folders_only_on_a_local_run(prelabeled, tmp_path):
    state = review.start(prelabeled.folder, order="name", status="all")
    review.decide(state, "accept", review.current(state).annotator)
    n = len(prelabeled.annotated(False))  # this test's image, and those earlier tests accepted
    done = f"Exported {n} image{'' if n == 1 else 's'} (accepted)"
    local, files = review.export(state, ["voc", "coco"], False, False, tmp_path / "local")
    assert local.startswith(f"{done} to ") and str(prelabeled.folder) in local
    public, files = review.export(state, ["voc", "coco"], False, False, tmp_path / "public", show_paths=False)
    assert public == f"{done} as Pascal VOC, COCO JSON: download the zips below."
    assert sorted(Path(f).name for f in files) == ["demo project-coco.zip", "demo project-voc.zip"]
    m = len(prelabeled.annotated(True))
    both, _ = review.export(state, ["coco"], True, True, tmp_path / "both", show_paths=False)
    assert m > n and both.startswith(f"Exported {m} images ({n} accepted, {m - n} proposed and not reviewed yet)")


def test_an_image_gone_from_the_source_can_be_passed_over_and_is_not_exported(tmp_path, examples_dir, model):
    """Moved or deleted after pre-labeling: its reason instead of a canvas, reject and skip still work, and an
    export refuses to write boxes for an image it does not have."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("chelsea.png", "coffee.png"):
        shutil.copy(examples_dir / name, src / name)
    project, _, _ = prelabel_folder(str(src), tmp_path / "p", method="cam", model=model)
    state = review.start(project.folder, "name", "all")
    review.decide(state, "accept", review.current(state).annotator, advance=False)  # chelsea
    (src / "chelsea.png").unlink()
    review.forget(project.folder)  # as a new session would open it
    state = review.start(project.folder, "name", "all")
    view = review.current(state)
    assert view.annotator is None and view.token == "" and view.position == "1 / 2"
    assert "chelsea.png: no longer in the project's source (moved or deleted?)" in view.info
    assert review.enter(state, view)["unreadable"]
    with pytest.raises(exp.ExportError, match=r"1 image\(s\) to export are no longer in the project's source .*: "
                                              "chelsea.png; put them back, or reject them"):
        exp.export(review.get_project(project.folder), "coco")
    features = extract_features(["chelsea.png", "coffee.png"], model, progress=False,
                                opener=review.get_project(project.folder).open)  # the Dataset map's reading
    assert features.paths == ["coffee.png"] and "chelsea.png: no longer in the project's source" in features.skipped[0]
    state = review.decide(state, "reject")
    assert review.current(state).annotator is not None  # coffee, still readable
    assert review.get_project(project.folder).counts()["rejected"] == 1


def test_the_project_worked_on_last_is_the_newest(tmp_path, examples_dir):
    """The Dataset map offers the project a user just worked on, not the last by name."""
    for name in ("alpha", "beta"):
        Project.create(tmp_path / name, source_spec(str(examples_dir))).close()
    for name, when in (("alpha", 2_000_000_000), ("beta", 1_000_000_000)):
        for file in (tmp_path / name).glob("project.sqlite*"):
            os.utime(file, (when, when))
    assert review.list_projects(tmp_path) == ["alpha", "beta"]
    assert review.newest_project(tmp_path) == "alpha"
    assert review.newest_project(tmp_path / "none") is None
