"""fol_core.webapp.localize: what the Localize tab computes, without a browser or a server."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image
from pycocotools.coco import COCO
from torchvision.datasets import VOCDetection

from fol_core import annotator, webapp
from fol_core.errors import UserError
from fol_core.images import ImageError
from fol_core.methods import METHODS, ParamError
from fol_core.result import Box, Localization
from fol_core.webapp import localize


def _photo(width: int = 4000, height: int = 3000, boxes: list[Box] | None = None) -> localize.Photo:
    return localize.Photo("unused.jpg", "big photo.jpg", width, height, annotator.display_scale(width, height),
                        boxes or [])


@pytest.mark.slow  # loads the model or starts a subprocess
def test_importable_without_gradio():
    code = ("import sys; sys.modules['gradio'] = None; "
            "from fol_core.webapp import dataset_map, localize, prelabel, review")
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr


def test_display_copy_keeps_mid_photos_shrinks_large_ones_and_enlarges_small_ones():
    mid = Image.new("RGB", (1000, 800))
    assert annotator.display_copy(mid) == (mid, 1.0)
    assert annotator.display_copy(Image.new("RGB", (4000, 3000)))[0].size == (1067, 800)
    assert annotator.display_copy(Image.new("RGB", (3000, 4000)))[0].size == (600, 800)
    assert annotator.display_copy(Image.new("RGB", (500, 2000)))[0].size == (200, 800)  # fits the window's height
    assert annotator.display_copy(Image.new("RGB", (8000, 1000)))[0].size == (1600, 200)
    assert annotator.display_copy(Image.new("RGB", (451, 300)))[0].size == (640, 426)


def test_annotator_round_trip_on_a_large_photo_is_in_the_photos_pixels():
    cat = Box(317.3, 10.6, 3641.9, 2990.2, "Egyptian cat", 285, 0.79, "gradcam")
    photo = _photo(boxes=[cat])
    shown = photo.to_annotator([cat])
    assert photo.scale == 3.75  # 3000 px high shown 800 high
    assert shown[0]["xmin"] == round(317.3 / 3.75) and shown[0]["ymax"] == round(2990.2 / 3.75)
    assert shown[0]["label"] == "Egyptian cat"
    # unchanged: the exact box back, score and all
    assert photo.from_annotator(shown) == [cat]
    moved = dict(shown[0], xmin=shown[0]["xmin"] + 40)
    new = {"xmin": 400, "ymin": 300, "xmax": 800, "ymax": 600, "label": "espresso"}
    backwards = {"xmin": 1100, "ymin": 900, "xmax": 1000, "ymax": -20, "label": ""}
    got = photo.from_annotator([moved, new, backwards])
    assert [(b.x0, b.y0, b.x1, b.y1) for b in got] == [
        (shown[0]["xmin"] * 3.75 + 150, shown[0]["ymin"] * 3.75, shown[0]["xmax"] * 3.75, shown[0]["ymax"] * 3.75),
        (1500.0, 1125.0, 3000.0, 2250.0),
        (3750.0, 0.0, 4000.0, 3000.0),  # edges ordered, clipped to the photo
    ]
    assert [(b.label, b.class_index, b.method) for b in got] == [
        ("Egyptian cat", 285, "manual"), ("espresso", 967, "manual"), ("object", -1, "manual")]


def panel(method: str, **values) -> list:
    """The Advanced panel's values as the app sends them: every control's default, some changed."""
    out = []
    for c in localize.CONTROLS:
        key = f"{c.param.name}_{c.word}" if c.word else c.param.name
        out.append(values.get(key, localize.control_default(c, "efficientnet_lite0")) if c.method == method
                   else localize.control_default(c, "efficientnet_lite0"))
    return out


def test_method_params_from_the_advanced_panel():
    fol = localize.method_params("fol", panel("fol", layer=" ", percentile=80))
    assert fol == {"k": 5, "kmax": 10, "percentile": 80.0, "shape": "square", "trim": 0.0}
    assert localize.method_params("cam", panel("cam", layer="bn2", threshold_otsu=True)) == {
        "threshold": "otsu", "layer": "bn2"}
    assert localize.method_params("gradcam", panel("gradcam", layer=""))["threshold"] == 0.3
    with pytest.raises(ParamError, match="threshold"):
        localize.method_params("gradcam", panel("gradcam", threshold=1.5))
    assert {c.method for c in localize.CONTROLS} == set(METHODS)  # generated: every method has a panel

def test_class_choices_cover_imagenet_and_find_synonyms():
    choices = localize.class_choices()
    assert len(choices) == 1000 and len({v for _, v in choices}) == 1000
    assert ("tabby, tabby cat (281)", 281) in choices


def test_a_trained_model_offers_its_own_classes_to_name(tmp_path):
    """Not ImageNet's: "tench" (index 0) would silently have asked for the trained model's class 0."""
    (tmp_path / "pets").mkdir()
    (tmp_path / "pets" / "card.json").write_text(json.dumps({"classes": ["raccoon", "red panda"],
                                                             "backbone": "efficientnet_lite0"}))
    model = str(tmp_path / "pets")
    assert localize.class_choices(model) == [("raccoon", 0), ("red panda", 1)]
    assert localize.rank_classes("PANDA", model) == [("red panda", 1)] and localize.rank_classes("", model) == [
        ("raccoon", 0), ("red panda", 1)]
    assert localize.classes_label(model) == "Classes of pets"
    assert len(localize.class_choices("efficientnet_lite0")) == 1000
    assert localize.rank_classes("red panda")[0] == ("lesser panda, red panda, panda (387)", 387)


def test_export_files_read_back_with_real_readers(tmp_path):
    boxes = [Box(0.0, 0.0, 4000.0, 2732.14, "drilling platform", 540, 0.42, "gradcam"),
             Box(1000.0, 750.0, 2000.0, 2250.0, "missile", 657, 1.0, "manual")]
    voc_path, coco_path, upright = localize.export_files(_photo(), boxes, tmp_path / "out")
    assert voc_path.parent == coco_path.parent == tmp_path / "out" and upright is None
    parsed = VOCDetection.parse_voc_xml(ET.parse(voc_path).getroot())["annotation"]
    assert parsed["filename"] == "big photo.jpg" and parsed["size"]["width"] == "4000"
    assert [(o["name"], [int(o["bndbox"][k]) for k in ("xmin", "ymin", "xmax", "ymax")]) for o in parsed["object"]] == [
        ("drilling platform", [1, 1, 4000, 2732]), ("missile", [1001, 751, 2000, 2250])]
    coco = COCO(str(coco_path))
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[1]))
    assert [(coco.cats[a["category_id"]]["name"], a["bbox"]) for a in anns] == [
        ("drilling platform", [0.0, 0.0, 4000.0, 2732.14]), ("missile", [1000.0, 750.0, 1000.0, 1500.0])]
    assert coco.imgs[1]["width"] == 4000 and coco.imgs[1]["height"] == 3000


def test_a_photo_stored_sideways_is_offered_upright_with_its_boxes(tmp_path):
    stored = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 60 x 40, shown (and boxed) 40 x 60
    Image.new("RGB", (60, 40), (200, 30, 30)).save(stored, exif=exif)
    box = Box(5.0, 10.0, 35.0, 50.0, "thing", 0, 1.0, "manual")
    photo = localize.Photo(str(stored), "phone.jpg", 40, 60, 1.0, [box])
    voc_path, _, upright = localize.export_files(photo, [box], tmp_path / "out")
    with Image.open(upright) as img:
        assert img.size == (40, 60) and img.getexif().get(0x0112, 1) == 1 and upright.name == "phone.jpg"
    assert VOCDetection.parse_voc_xml(ET.parse(voc_path).getroot())["annotation"]["size"]["width"] == "40"
    stored.unlink()  # Gradio's cache cleared: the boxes are still written
    assert localize.export_files(photo, [box], tmp_path / "again")[2] is None


def test_session_folder_is_temporary_and_removable():
    path = webapp.workdir()
    assert webapp.workdir(path) == path
    assert Path(path).is_dir() and not Path(path).is_relative_to(Path(__file__).resolve().parent.parent)
    webapp.remove_workdir(path)
    assert not Path(path).exists()


def test_run_localize_on_a_large_photo(model, examples_dir, tmp_path):
    big = tmp_path / "big.jpg"
    Image.open(examples_dir / "chelsea.png").convert("RGB").resize((4000, 3000)).save(big, quality=90)
    params = localize.method_params("gradcam", panel("gradcam"))
    view = localize.run_localize(str(big), model.name, "gradcam", "top1", 1, None, params)
    assert view.photo.width == 4000 and view.photo.scale == 3.75
    assert view.boxed.size == view.annotator["image"].size == (1067, 800)
    assert "Photo: 4000 x 3000 pixels" in view.summary
    assert view.result.boxes and max(b.x1 for b in view.result.boxes) > 1067  # photo pixels, not display's
    assert next(iter(view.top5)) in view.labels and len(view.labels) == len(view.label_colors)
    assert view.photo.from_annotator(view.annotator["boxes"]) == view.result.boxes


def test_run_localize_named_classes_and_bad_requests(model, examples_dir):
    params = localize.method_params("cam", panel("cam"))
    view = localize.run_localize(str(examples_dir / "coffee.png"), model.name, "cam", "named", 1, [967, "cup"], params)
    assert {e.label for e in view.result.explanations} == {"espresso", "cup"}
    assert view.why.width > view.why.height  # one heatmap per class, side by side
    with pytest.raises(localize.InputError, match="Upload a photo"):
        localize.run_localize(None, model.name, "cam", "top1", 1, None, params)
    with pytest.raises(localize.InputError, match="at least one class"):
        localize.run_localize(str(examples_dir / "coffee.png"), model.name, "cam", "named", 1, [], params)
    with pytest.raises(ParamError, match="k must be between 1 and kmax"):
        localize.run_localize(str(examples_dir / "coffee.png"), model.name, "fol", "top1", 1, None,
                              localize.method_params("fol", panel("fol", k=12)))
    with pytest.raises(UserError, match="no layer"):
        localize.run_localize(str(examples_dir / "coffee.png"), model.name, "cam", "top1", 1, None,
                            {"layer": "no.such.layer"})
    with pytest.raises(ImageError, match="not an image"):
        localize.run_localize(__file__, model.name, "cam", "top1", 1, None, params)


def test_rank_classes_puts_whole_words_first():
    cup = localize.rank_classes("cup")
    indices = [index for _, index in cup]
    assert indices[0] == 968 and cup[0] == ("cup (968)", 968)
    assert indices.index(334) > indices.index(647)  # porcupine after measuring cup: a substring comes last
    assert localize.rank_classes(" Coffee  MUG ")[0][1] == 504
    assert localize.rank_classes("tab")[0][1] == 281  # tabby: a word's start before "table" and "dining table"
    assert localize.rank_classes("") == localize.class_choices()
    assert localize.rank_classes("no such thing") == []


def _result(p: float, box: tuple[float, float, float, float]) -> Localization:
    return Localization(512, 512, "m", "fol", [Box(*box, "bobsled", 450, p, "fol")],
                        [(450, "bobsled", p), (560, "football helmet", 0.1)])


def test_caution_when_the_classifier_is_unsure_or_the_box_is_the_whole_photo():
    unsure = localize.caution(_result(0.28, (0, 0, 512, 512)))
    assert "the classifier is unsure (bobsled 28%): check the class, or name one" in unsure
    assert "covers almost the whole photo" in unsure
    assert localize.caution(_result(0.28, (100, 100, 300, 300))).count(";") == 0
    assert localize.caution(_result(0.91, (100, 100, 300, 300))) == ""
    assert localize.caution(_result(0.91, (10, 10, 500, 500))).startswith("⚠️ Careful: a box covers")
    assert localize.caution(_result(0.28, (100, 100, 300, 300)), named=True) == ""  # the user chose the class
    cats = Localization(512, 512, "m", "mscam", [Box(0, 0, 300, 300, "Egyptian cat", 285, 0.39, "mscam")],
                        [(285, "Egyptian cat", 0.39), (282, "tiger cat", 0.21), (281, "tabby", 0.15), (287, "lynx", 0.1)])
    assert "sure of a domestic cat (75%: Egyptian cat 39%, tiger cat 21%, tabby 15%), not of which one" in \
        localize.caution(cats)
    assert "unsure (Egyptian cat 39%)" in localize.caution(cats, imagenet=False)  # a trained model's own classes


def test_choosing_a_trained_model_resets_the_thresholds_to_its_defaults(tmp_path):
    folder = tmp_path / "raccoon"
    folder.mkdir()
    (folder / "card.json").write_text('{"classes": ["raccoon"], "backbone": "efficientnet_lite0"}')
    controls = [localize.CONTROLS[i] for i in localize.MODEL_CONTROLS]
    imagenet = dict(zip(map(id, controls), localize.model_defaults("efficientnet_lite0")))
    trained = dict(zip(map(id, controls), localize.model_defaults(str(folder))))
    thresholds = [c for c in controls if c.param.name == "threshold"]
    assert {c.method for c in thresholds} >= {"cam", "mscam"}
    for c in thresholds:
        assert imagenet[id(c)] == c.param.default and trained[id(c)] == c.param.trained_default != c.param.default
    assert all(imagenet[id(c)] == trained[id(c)] for c in controls if c.param.name == "layer")
