"""The served app through gradio_client: localize, accept, export; bad requests; several users at once."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image
from pycocotools.coco import COCO
from torchvision.datasets import VOCDetection

from fol_core.webapp.localize import CONTROLS, control_default

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DEFAULTS = {"model_name": "efficientnet_lite0", "method": "gradcam", "class_mode": "top1", "topn": 3, "named": []}


def panel(method: str, **values) -> list:
    """The Advanced panel's values, as the page sends them: the controls' defaults, the chosen method's
    parameters changed (a word such as otsu=True ticks that parameter's word box)."""
    out = []
    for c in CONTROLS:
        value = control_default(c, DEFAULTS["model_name"])
        if c.method == method:
            value = values.get(c.word or c.param.name, value)
        out.append(value)
    return out


def localize(client: Client, photo: Path | str, **changes) -> dict:
    """One Localize press; the outputs by name."""
    args = DEFAULTS | {k: v for k, v in changes.items() if k in DEFAULTS}
    params = {k: v for k, v in changes.items() if k not in DEFAULTS}
    out = client.predict(handle_file(str(photo)), *args.values(), *panel(args["method"], **params),
                         api_name="/localize")
    names = ["boxed", "why", "top5", "summary", "annotator", "table", "voc", "coco", "upright"]
    return dict(zip(names, out))


def accept(client: Client, annotator: dict, extra_boxes: list[dict] = ()) -> tuple[list[list], str, str]:
    """Press Accept with the annotator's value as the browser sends it (colours as rgb() strings)."""
    value = annotator["value"]
    boxes = [dict(b, color="rgb({}, {}, {})".format(*b["color"])) for b in value["boxes"]] + list(extra_boxes)
    table, voc_file, coco_file, upright = client.predict(
        {"image": handle_file(value["image"]), "boxes": boxes, "orientation": 0}, api_name="/accept")
    assert upright["visible"] is False  # the examples are stored upright: no photo to download again
    return table["data"], voc_file["value"], coco_file["value"]


def read_voc(path: str) -> list[tuple[str, list[int]]]:
    ann = VOCDetection.parse_voc_xml(ET.parse(path).getroot())["annotation"]
    return [(o["name"], [int(o["bndbox"][k]) for k in ("xmin", "ymin", "xmax", "ymax")]) for o in ann["object"]]


def read_coco(path: str) -> list[tuple[str, list[float]]]:
    coco = COCO(path)
    return [(coco.cats[a["category_id"]]["name"], a["bbox"]) for a in coco.loadAnns(coco.getAnnIds())]


def test_localize_with_fol_then_export(url):
    client = Client(url, verbose=False)
    out = localize(client, EXAMPLES / "chelsea.png", method="fol")
    assert out["top5"]["label"] == "Egyptian cat"
    assert "with FOL" in out["summary"] and "Photo: 451 x 300 pixels" in out["summary"]
    assert Image.open(out["boxed"]).size == (640, 426)  # the display copy: small photos are enlarged
    assert Image.open(out["why"]).width > 4 * Image.open(out["why"]).height  # the Figure 3 row
    rows = out["table"]["data"]
    assert rows and rows[0][0] == "Egyptian cat"
    assert out["voc"]["interactive"] is False  # nothing to download before Accept
    table, voc_file, coco_file = accept(client, out["annotator"])
    assert table == rows
    assert Path(voc_file).name == "chelsea.xml" and Path(coco_file).name == "chelsea.coco.json"
    x0, y0, x1, y1 = rows[0][1:5]
    assert read_voc(voc_file) == [("Egyptian cat", [round(x0) + 1, round(y0) + 1, round(x1), round(y1)])]
    assert read_coco(coco_file) == [("Egyptian cat", pytest.approx([x0, y0, x1 - x0, y1 - y0], abs=0.06))]


def test_large_photo_boxes_come_back_in_the_photos_pixels(url, tmp_path):
    big = tmp_path / "big.jpg"
    Image.open(EXAMPLES / "rocket.jpg").convert("RGB").resize((4000, 2000)).save(big, quality=90)
    client = Client(url, verbose=False)
    out = localize(client, big)
    assert "Photo: 4000 x 2000 pixels" in out["summary"]
    shown = out["annotator"]["value"]
    assert Image.open(shown["image"]).size == (1600, 800)  # the annotator gets a display copy
    found = out["table"]["data"]
    drawn = {"xmin": 400, "ymin": 300, "xmax": 800, "ymax": 700, "label": "missile", "color": "rgb(255, 0, 0)"}
    table, voc_file, coco_file = accept(client, out["annotator"], [drawn])
    assert table[:-1] == found  # unchanged boxes keep their exact coordinates
    assert table[-1][:5] == ["missile", 1000, 750, 2000, 1750]  # display pixels x 2.5
    assert read_voc(voc_file)[-1] == ("missile", [1001, 751, 2000, 1750])
    assert read_coco(coco_file)[-1] == ("missile", [1000, 750, 1000, 1000])
    assert [b[1] for b in read_coco(coco_file)[:-1]] == [pytest.approx([r[1], r[2], r[3] - r[1], r[4] - r[2]], abs=0.06)
                                                         for r in found]


def test_mscam_panel_takes_its_scales_as_text_and_the_grabcut_choice(url):
    client = Client(url, verbose=False)
    out = localize(client, EXAMPLES / "coffee.png", method="mscam", scales="224,320", refine="grabcut")
    (box,) = out["table"]["data"][:1]
    assert box[0] == "espresso" and box[1:5] == pytest.approx([75, 18, 480, 390], abs=25)  # cup and saucer


def test_bad_requests_get_a_message_and_the_app_goes_on(url, tmp_path):
    client = Client(url, verbose=False)
    not_image = tmp_path / "notes.png"
    not_image.write_text("not a photo")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (1, 1)).save(tiny)
    huge = tmp_path / "huge.png"
    Image.new("1", (20000, 20000)).save(huge)  # 400 megapixels in a few kilobytes
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes((EXAMPLES / "rocket.jpg").read_bytes()[:3000])
    cases = [
        (not_image, {}, "not an image file"),
        (empty, {}, "empty"),
        (tiny, {}, "too small"),
        (huge, {}, "decompression bomb"),
        (truncated, {}, "corrupt or truncated"),
        (EXAMPLES / "chelsea.png", {"model_name": "vgg16"}, "vgg16"),
        (EXAMPLES / "chelsea.png", {"class_mode": "named"}, "at least one class"),
        (EXAMPLES / "chelsea.png", {"method": "fol", "k": 12}, "k must be between 1 and kmax"),
        (tmp_path / "notes.txt", {}, "Invalid file type"),
    ]
    (tmp_path / "notes.txt").write_text("hello")
    for photo, changes, message in cases:
        with pytest.raises(AppError, match=message):
            localize(client, photo, **changes)
    with pytest.raises(AppError, match="Localize a photo first"):
        client.predict({"image": handle_file(str(EXAMPLES / "coffee.png")), "boxes": []}, api_name="/accept")
    assert localize(client, EXAMPLES / "coffee.png")["top5"]["label"] == "espresso"


def test_two_users_at_once_get_their_own_results(url):
    def session(photo: str, classes: list[int]) -> tuple[str, list]:
        client = Client(url, verbose=False)
        out = localize(client, EXAMPLES / photo, class_mode="named", named=classes, method="cam")
        _, voc_file, _ = accept(client, out["annotator"])
        return Path(voc_file).name, sorted({name for name, _ in read_voc(voc_file)})

    with ThreadPoolExecutor(2) as pool:
        cat = pool.submit(session, "chelsea.png", [285])
        coffee = pool.submit(session, "coffee.png", [967, 968])
        assert cat.result() == ("chelsea.xml", ["Egyptian cat"])
        assert coffee.result() == ("coffee.xml", ["cup", "espresso"])
