"""`eval` end to end on a small VOC folder the test writes itself from the example photos."""

from __future__ import annotations

import argparse
import csv
import json
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image, ImageOps

from fol_core.evaluation import command
from fol_core.evaluation.dataset import build_mosaics, load_dataset, load_label_map
from fol_core.evaluation.evaluate import Outcome
from fol_core.formats import AnnotatedImage, voc
from fol_core.images import load_image
from fol_core.methods import FastLocalization, GradCAM
from fol_core.result import Box

LABELS = """\
cat: [tabby, tiger cat, Egyptian cat]
cup: [espresso, cup, coffee mug]
rocket: [missile, projectile, space shuttle]
"""
KEYS = {"gt_known_loc", "top1_loc", "mean_iou", "center_correct", "s_per_image"}


@pytest.fixture(scope="module")
def voc_folder(tmp_path_factory, examples_dir):
    """Four real photos with the developers' hand-drawn boxes, a mirrored cat, a photo labelled only
    'person' (not in the label map) and a file that is not an image."""
    root = tmp_path_factory.mktemp("voc")
    (root / "Annotations").mkdir()
    (root / "JPEGImages").mkdir()
    hand = json.loads((examples_dir / "boxes.json").read_text())
    items = {name: (hand[name]["label"], hand[name]["box"]) for name in ("chelsea.png", "coffee.png", "rocket.jpg")}
    items["astronaut.png"] = ("person", [150, 20, 460, 512])
    for name in items:
        Image.open(examples_dir / name).save(root / "JPEGImages" / name)
    cat = Image.open(examples_dir / "chelsea.png")
    ImageOps.mirror(cat).save(root / "JPEGImages" / "chelsea_mirror.png")
    x0, y0, x1, y1 = hand["chelsea.png"]["box"]
    items["chelsea_mirror.png"] = ("cat", [cat.width - x1, y0, cat.width - x0, y1])
    (root / "JPEGImages" / "broken.jpg").write_bytes(b"not a photo")
    for name, (label, box) in items.items():
        w, h = Image.open(root / "JPEGImages" / name).size
        item = AnnotatedImage(name, w, h, [Box(*box, label, -1, 1.0, "hand")])
        voc.write(item, root / "Annotations" / f"{name.split('.')[0]}.xml")
    broken = AnnotatedImage("broken.jpg", 100, 100, [Box(0, 0, 50, 50, "cat", -1, 1.0, "hand")])
    voc.write(broken, root / "Annotations" / "broken.xml")
    (root / "labels.yaml").write_text(LABELS)
    return root, items


def _eval(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return command.run(parser.parse_args(list(argv)))


def test_eval_writes_results_plots_and_sheets(model, voc_folder, tmp_path, capsys):
    root, items = voc_folder
    out = tmp_path / "out"
    assert _eval(str(root), "--methods", "fol,gradcam", "--labels", str(root / "labels.yaml"), "--out", str(out)) == 0
    err = capsys.readouterr().err
    assert sum("broken.jpg" in line for line in err.splitlines()) == 1  # reported on one line, skipped
    assert "'person'" in err

    results = json.loads((out / "results.json").read_text())
    assert results["dataset"] == root.name and results["model"] == "efficientnet_lite0"
    assert results["n_images"] == 4  # the cat, its mirror, the coffee, the rocket
    assert set(results["methods"]) == {"fol", "gradcam"}
    assert set(results["baselines"]) == {"whole_image", "centre_80"}
    for kind in ("methods", "baselines"):
        for r in results[kind].values():
            assert KEYS <= set(r)
            assert list(r["center_correct"]) == ["0.0", "0.05", "0.1", "0.15", "0.2", "0.25", "0.3", "0.35", "0.4",
                                                 "0.45", "0.5"]
            assert 0 <= r["top1_loc"] <= min(r["gt_known_loc"], results["top1_accuracy"])
    assert "maxboxacc_v2" in results["methods"]["gradcam"] and "maxboxacc_v2" not in results["methods"]["fol"]
    assert results["methods"]["fol"]["s_per_image"] > 0
    assert results["methods"]["fol"]["params"] == {"percentile": FastLocalization(model).percentile}

    # the whole-image box by hand: IoU = true box area / photo area
    areas = []
    for name in ("chelsea.png", "chelsea_mirror.png", "coffee.png", "rocket.jpg"):
        x0, y0, x1, y1 = items[name][1]
        w, h = Image.open(root / "JPEGImages" / name).size
        areas.append((x1 - x0) * (y1 - y0) / (w * h))
    whole = results["baselines"]["whole_image"]
    assert whole["mean_iou"] == pytest.approx(np.mean(areas), abs=1e-4)
    assert whole["gt_known_loc"] == pytest.approx(np.mean(np.array(areas) >= 0.5))
    # by kind of photo: one true box each; small where it covers under a fifth of the photo
    kinds, small = whole["by_kind"], np.array(areas) < 0.2
    assert kinds["one object"] == {"n": 4, "gt_known_loc": pytest.approx(whole["gt_known_loc"])}
    assert kinds["several objects"] == {"n": 0, "gt_known_loc": None}
    assert kinds["small objects"]["n"] == small.sum() and kinds["larger objects"]["n"] == 4 - small.sum()
    if not small.all():
        assert kinds["larger objects"]["gt_known_loc"] == pytest.approx(np.mean(np.array(areas)[~small] >= 0.5))
    assert results["methods"]["fol"]["by_kind"]["one object"]["n"] == 4

    with (out / "per_image.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8
    fol_ious = [float(r["iou"]) for r in rows if r["method"] == "fol"]
    assert np.mean(fol_ious) == pytest.approx(results["methods"]["fol"]["mean_iou"], abs=1e-3)
    # paired comparisons: each method against the later entries, baselines never against each other
    pairs = {(c["a"], c["b"]): c for c in results["comparisons"]}
    assert set(pairs) == {("fol", "gradcam"), ("fol", "whole_image"), ("fol", "centre_80"),
                          ("gradcam", "whole_image"), ("gradcam", "centre_80")}
    fol_hits, whole_hits = np.array(fol_ious) >= 0.5, np.array(areas) >= 0.5  # per_image.csv keeps the order
    c = pairs["fol", "whole_image"]
    assert (c["only_a"], c["only_b"]) == ((fol_hits & ~whole_hits).sum(), (~fol_hits & whole_hits).sum())
    assert c["difference"] == pytest.approx(fol_hits.mean() - whole_hits.mean())
    lo, hi = results["methods"]["fol"]["gt_known_interval"]
    assert lo <= results["methods"]["fol"]["gt_known_loc"] <= hi

    report = (out / "results.md").read_text()
    assert "| gradcam |" in report and "| several objects (0) |" in report
    assert "| fol | *whole image* (baseline) |" in report
    for name in ("iou_histogram", "center_correctness", "comparison", "sheet_fol", "sheet_gradcam"):
        with Image.open(out / f"{name}.png") as png:
            assert png.width >= 600 and png.height >= 300
    assert "calibration.png" not in (out / "results.md").read_text() and not (out / "calibration.png").exists()


@pytest.mark.slow  # loads the model or starts a subprocess
def test_calibration_never_sees_the_scored_images(voc_folder, tmp_path, capsys):
    root, _ = voc_folder
    out = tmp_path / "cal"
    labels = str(root / "labels.yaml")
    # sorted ids: astronaut, broken, chelsea, chelsea_mirror, coffee, rocket -> calib: even positions
    assert _eval(str(root), "--methods", "cam", "--calibrate", "--labels", labels, "--out", str(out)) == 0
    results = json.loads((out / "results.json").read_text())
    cal = results["calibration"]["methods"]["cam"]
    assert cal["param"] == "threshold" and cal["n_images"] == 2  # chelsea and coffee
    assert cal["chosen"] in cal["values"] and len(cal["gt_known_loc"]) == len(cal["values"])
    assert results["methods"]["cam"]["params"] == {"threshold": cal["chosen"]}
    assert results["split"] == "test" and results["n_images"] == 2  # chelsea_mirror and rocket
    assert (out / "calibration.png").is_file() and "`calibration.png`" in (out / "results.md").read_text()

    capsys.readouterr()
    assert _eval(str(root), "--methods", "cam", "--calibrate", "--split", "all", "--out", str(out)) == 2
    assert "--split test" in capsys.readouterr().err
    assert _eval(str(tmp_path), "--out", str(out)) == 2
    assert "not a Pascal VOC folder" in capsys.readouterr().err
    assert _eval(str(tmp_path / "missing"), "--out", str(out)) == 2
    assert "missing: no such folder" in capsys.readouterr().err
    (tmp_path / "empty" / "Annotations").mkdir(parents=True)
    assert _eval(str(tmp_path / "empty"), "--out", str(out)) == 2
    assert "Annotations/ holds no .xml file" in capsys.readouterr().err
    assert _eval(str(root), "--methods", "fol,yolo", "--out", str(out)) == 2


def test_explain_each_equals_the_method_at_each_value(model, examples_dir):
    """Calibration shares one photo's work across a parameter's values: each result must be the method's own."""
    fp = FastLocalization(model).forward(model.to_pixels(load_image(examples_dir / "chelsea.png")))
    low, high = FastLocalization(model).explain_each(fp, 281, "percentile", [60.0, 95.0])
    assert np.array_equal(high.mask, FastLocalization(model, percentile=95.0).explain(fp, 281).mask)
    assert not np.array_equal(low.mask, high.mask)
    cam = GradCAM(model)
    fp = cam.forward(model.to_pixels(load_image(examples_dir / "chelsea.png")))
    for expl, t in zip(cam.explain_each(fp, 281, "threshold", [0.2, 0.6]), [0.2, 0.6]):
        assert np.array_equal(expl.mask, GradCAM(model, threshold=t).explain(fp, 281).mask)


def test_mosaics_put_two_labelled_photos_side_by_side(voc_folder, tmp_path):
    root, items = voc_folder
    data = load_dataset(root, ["chelsea", "coffee", "rocket"], load_label_map(root / "labels.yaml"))
    mosaics = build_mosaics(data, tmp_path / "m")
    cat, cup = mosaics.samples  # rocket has no partner left
    assert cat.path == cup.path and cat.label == "cat" and cup.label == "cup"
    with Image.open(cat.path) as im:
        assert im.size == (cat.width, cat.height)
    scale = cat.height / Image.open(root / "JPEGImages" / "coffee.png").height
    cat_w = round(Image.open(root / "JPEGImages" / "chelsea.png").width * cat.height / 300)
    assert cup.boxes[0] == pytest.approx(np.array(items["coffee.png"][1]) * scale + [cat_w, 0, cat_w, 0])


def test_agnostic_samples_hold_every_box_and_outcomes_count_recall(voc_folder):
    root, _ = voc_folder
    named = load_dataset(root, ["astronaut"])  # without --agnostic, the message says it exists
    assert not named.samples and named.problems == [
        ("skipped objects named 'person': not among ImageNet's classes (--labels maps it to some; --agnostic "
         "scores the boxes whatever the class)")]
    (sample,) = load_dataset(root, ["astronaut"], agnostic=True).samples  # "person": no ImageNet class needed
    assert sample.classes == () and sample.label == "object"
    sample = replace(sample, boxes=np.array([[0, 0, 10, 10], [20, 20, 40, 40]], float))
    out = Outcome(sample, np.array([[20, 20, 40, 41], [0, 0, 30, 30]], float), 0.95, 0, 0, 0.1)
    assert out.found == 1 and out.top_iou == pytest.approx(400 / 420) and out.top1_ok


def test_sheet_zero_writes_the_plots_but_no_sheet(voc_folder, tmp_path):
    from fol_core.evaluation.plots import write_plots
    from fol_core.evaluation.report import build_results

    root, _ = voc_folder
    (sample,) = load_dataset(root, ["astronaut"], agnostic=True).samples
    outcomes = {"fol": [Outcome(sample, np.array([[150, 20, 460, 512]], float), 1.0, 0, 0, 0.1)]}
    results = build_results(root.name, "efficientnet_lite0", "all", outcomes, {"fol": {}}, None, "eval")
    paths = write_plots(results, outcomes, tmp_path, n_sheet=0)
    assert paths and all(p.is_file() for p in paths)
    assert not list(tmp_path.glob("sheet_*.png"))
