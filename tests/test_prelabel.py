"""Pre-labeling: user labels on boxes, resumable runs from folders, zips and saved datasets, the CLI."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

import datasets
import pytest
from conftest import MAP
from pycocotools.coco import COCO

from fol_core.bootstrap import export as exp
from fol_core.bootstrap.prelabel import open_run, prelabel_folder, run_prelabel
from fol_core.bootstrap.project import open_project
from fol_core.imagenet import resolve_class
from fol_core.labelmap import LabelMap
from fol_core.paths import FolderBusyError, exclusive

CATS = {resolve_class(n) for n in ("tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat")}



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


def test_cli_prelabel_resumes_and_export_refuses_other_folders(tmp_path, examples_dir, model, capsys):
    from fol_core.cli import main

    src = tmp_path / "src"
    src.mkdir()
    for name in ("chelsea.png", "coffee.png"):
        shutil.copy(examples_dir / name, src / name)
    out = tmp_path / "proj"
    assert main(["prelabel", str(src), "--out", str(out), "--method", "cam", "--threshold", "0.4", "--limit", "1"]) == 0
    text = capsys.readouterr().out
    assert "2 images (2 new), 2 to pre-label" in text and "1 image in" in text and "1 left" in text
    assert main(["prelabel", str(src), "--out", str(out)]) == 0  # carries on as it began: the same method and threshold
    said = capsys.readouterr()
    assert "2 images (0 new), 1 to pre-label" in said.out and "note:" not in said.err
    project = open_project(out)
    assert {b.method for r in project.images() for b in r.proposals} == {"cam"}
    assert project.meta("settings")["params"] == {"threshold": 0.4}
    project.close()
    other = tmp_path / "other"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    assert main(["prelabel", str(src), "--out", str(other)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "not empty" in err
    assert main(["export", str(out)]) == 2
    err = capsys.readouterr().err
    assert "nothing to export" in err and "--include-proposals" in err and err.count("\n") == 1
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


def test_a_source_without_images_is_one_line_and_leaves_no_project(tmp_path, capsys):
    """A folder without photos used to make an empty project and report "0 images" as done (a zip of documents
    was refused on extraction already): both are one line now, and leave no project behind."""
    from fol_core.cli import main

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("not a photo")
    with zipfile.ZipFile(tmp_path / "docs.zip", "w") as z:
        z.writestr("notes.txt", "not a photo")
    for source in ("docs", "docs.zip"):
        assert main(["prelabel", str(tmp_path / source), "--out", str(tmp_path / "p")]) == 2
        err = capsys.readouterr().err
        assert "no image" in err and err.count("\n") == 1
        assert not (tmp_path / "p").exists()


def test_a_saved_dataset_is_pre_labeled_and_exported_from_its_bytes(tmp_path, examples_dir, model):
    feats = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["cat", "cup"])})
    datasets.Dataset.from_dict(
        {"image": [str(examples_dir / "chelsea.png"), str(examples_dir / "coffee.png")], "label": [0, 1]}, features=feats,
    ).save_to_disk(str(tmp_path / "saved"))
    project, _ = open_run(str(tmp_path / "saved"), str(tmp_path / "p"), image_labels="label")
    run_prelabel(project, model, "cam", label_map=LabelMap.parse(MAP))
    recs = {r.key: r for r in project.images()}
    assert [b.label for b in recs["train/1"].proposals] == ["cup"] and recs["train/0"].image_label == "cat"
    path = exp.export(project, "coco", include_proposals=True)
    assert sorted(p.name for p in (path / "images").iterdir()) == ["train__chelsea.png", "train__coffee.png"]
    assert (path / "images" / "train__coffee.png").read_bytes() == (examples_dir / "coffee.png").read_bytes()


def test_prelabel_bench_runs_each_method_with_the_options_given(tmp_path, examples_dir, model, monkeypatch, capsys):
    """`--bench` used to drop the method options, so `--foreground 0` timed the default."""
    from fol_core.bootstrap import prelabel
    from fol_core.cli import main

    seen = []
    real = prelabel.run_prelabel
    monkeypatch.setattr(prelabel, "run_prelabel", lambda project, model, method, params, *a, **k: (
        seen.append((method, params)), real(project, model, method, params, *a, **k))[1])
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(examples_dir / "chelsea.png", src / "chelsea.png")
    assert main(["prelabel", str(src), "--bench", "cam,gradcam", "--limit", "1", "--threshold", "0.6"]) == 0
    assert "images/s" in capsys.readouterr().out
    assert seen and all(params == {"threshold": 0.6} for _, params in seen)
    assert {method for method, _ in seen} == {"cam", "gradcam"}
    assert not list(tmp_path.glob("src/*.sqlite*")) and sorted(p.name for p in src.iterdir()) == ["chelsea.png"]


def test_an_image_labelled_background_gets_no_box_and_an_unknown_label_a_note(tmp_path, examples_dir, model):
    for folder, name in (("Background", "coffee.png"), ("raccoon", "chelsea.png"), ("cup", "coffee.png")):
        (tmp_path / "src" / folder).mkdir(parents=True)
        shutil.copy(examples_dir / name, tmp_path / "src" / folder / name)
    project, summary, _ = prelabel_folder(str(tmp_path / "src"), tmp_path / "p", image_labels="folders", method="cam",
                                          model=model)
    recs = {r.key: r for r in project.images()}
    assert recs["Background/coffee.png"].stage == "no_object" and recs["Background/coffee.png"].proposals == []
    assert [b.label for b in recs["cup/coffee.png"].proposals] == ["cup"]  # the same photo, labelled: a box
    assert recs["raccoon/chelsea.png"].stage == "proposed"  # an unknown label: pre-labeled as unlabelled
    (note,) = summary.notes
    assert "1 image(s) carry a label the map does not know (1 label(s): 'raccoon')" in note and "train" in note
    project.close()


def test_an_image_that_failed_is_tried_again_on_the_next_run(tmp_path, examples_dir, model):
    (tmp_path / "src").mkdir()
    shutil.copy(examples_dir / "coffee.png", tmp_path / "src" / "a.png")
    (tmp_path / "src" / "b.png").write_bytes(b"not yet a photo")
    project, summary, _ = prelabel_folder(str(tmp_path / "src"), tmp_path / "p", method="cam", model=model)
    assert summary.failed == 1 and project.counts()["failed"] == 1
    assert summary.errors == ["b.png: not an image file Pillow can read"]  # named once
    project.close()
    shutil.copy(examples_dir / "chelsea.png", tmp_path / "src" / "b.png")  # the user mends the file
    project, summary, new = prelabel_folder(str(tmp_path / "src"), tmp_path / "p", model=model)
    assert new == 0 and summary.done == 1 and summary.failed == 0
    assert {r.key: r.stage for r in project.images()} == {"a.png": "proposed", "b.png": "proposed"}
    project.close()


def test_a_second_run_on_a_project_in_use_is_refused_and_leaves_it_whole(tmp_path, examples_dir, model):
    """Two runs at once (a double click, two tabs, the CLI beside the app) would extract the same upload and could
    remove the project under each other: the second is refused in one line, across processes too."""
    out = tmp_path / "p"
    with exclusive(out, "held"):  # as another run holds it
        with pytest.raises(FolderBusyError, match="p is being pre-labeled or improved by another run"):
            prelabel_folder(str(examples_dir), out, method="cam", model=model)
        cli = subprocess.run([sys.executable, "-m", "fol_core", "prelabel", str(examples_dir), "--out", str(out),
                              "--method", "cam"], capture_output=True, text=True, timeout=300, check=False)
        assert cli.returncode == 2 and "being pre-labeled or improved by another run" in cli.stderr
        assert not out.exists()  # the refused runs made nothing
    project, summary, new = prelabel_folder(str(examples_dir), out, method="cam", model=model)
    assert new == summary.done == 4
    project.close()


def test_a_resumed_run_keeps_the_learned_setting_and_says_what_changes(tmp_path, examples_dir, model):
    """A run that leaves the method out goes on with the project's (and `improve`'s threshold); one that names
    another says the project now mixes two."""
    project, _ = open_run(str(examples_dir), str(tmp_path / "p"))
    assert not run_prelabel(project, model, "gradcam", limit=1).notes
    project.set_meta("settings", {**project.meta("settings"), "params": {"threshold": 0.5}})  # as improve learns it
    assert not run_prelabel(project, model, limit=1).notes
    assert project.meta("settings")["method"] == "gradcam" and project.meta("settings")["params"] == {"threshold": 0.5}
    notes = run_prelabel(project, model, "cam", limit=1).notes
    assert notes == ["this project's images so far were pre-labeled with method gradcam, these with method cam"]
    assert [{b.method for b in r.proposals} for r in project.images()][:3] == [{"gradcam"}, {"gradcam"}, {"cam"}]
    run_prelabel(project, model, "cam")
    done = project.meta("settings")
    assert not run_prelabel(project, model, "gradcam").notes  # nothing left: no note, and the settings stay
    assert project.meta("settings") == done
    project.close()
