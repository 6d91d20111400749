"""End to end in headless Chromium: click an example (it runs), upload a large photo (the old result goes),
localize, see the box, draw one more, accept, download.

Skips where Debian's chromium is absent, unless FOL_REQUIRE_BROWSER=1 (CI), where it must run.
"""

from __future__ import annotations

import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from browser_support import chromium_page, require_chromium
from PIL import Image
from playwright.sync_api import expect
from torchvision.datasets import VOCDetection

require_chromium()
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="module")
def page(url):
    with chromium_page(url) as page:
        yield page


def test_upload_localize_nudge_accept_download(page, tmp_path):
    page.locator("#example-gallery button.thumbnail-item").last.click()  # astronaut.png: a click runs it
    expect(page.locator("#summary")).to_contain_text("the classifier is unsure (bobsled")
    expect(page.locator("#box-table tbody")).to_contain_text("bobsled")
    page.locator("#photo-file button[aria-label='Clear']").click()  # to upload another photo
    expect(page.locator("#summary")).to_contain_text("Upload a photo or pick an example")  # the old result went
    expect(page.locator("#boxed img")).to_have_count(0)
    expect(page.locator("#box-table tbody")).not_to_contain_text("bobsled")
    photo = tmp_path / "big rocket.jpg"
    Image.open(EXAMPLES / "rocket.jpg").convert("RGB").resize((4000, 3000)).save(photo, quality=90)
    page.set_input_files("#photo-file input[type=file]", str(photo))
    expect(page.locator("#photo-preview img")).to_be_visible()
    page.get_by_label("Grad-CAM").check()
    page.click("#localize-button")
    expect(page.locator("#summary")).to_contain_text("Photo: 4000 x 3000 pixels")
    expect(page.locator("#summary")).to_contain_text("1 box")
    expect(page.locator("#boxed img")).to_be_visible()

    # draw a second box over the middle of the annotator's canvas, in its own on-screen pixels
    canvas = page.locator("#annotator canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    page.locator("#annotator button[aria-label='Create box']").click()
    fx, fy = (0.25, 0.5), (0.3, 0.8)
    page.mouse.move(box["x"] + box["width"] * fx[0], box["y"] + box["height"] * fy[0])
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * fx[1], box["y"] + box["height"] * fy[1], steps=8)
    page.mouse.up()
    page.get_by_role("button", name="OK").click()

    page.click("#accept-button")
    expect(page.locator("#download-voc")).to_be_enabled()
    shot = tmp_path / "app.png"
    page.screenshot(path=str(shot), full_page=True)
    shutil.copy(shot, Path(os.environ.get("TMPDIR", "/tmp")) / "fol-browser-test.png")
    with page.expect_download() as download:
        page.click("#download-voc")
    assert download.value.suggested_filename == "big rocket.xml"
    xml_path = tmp_path / "boxes.xml"
    download.value.save_as(xml_path)

    ann = VOCDetection.parse_voc_xml(ET.parse(xml_path).getroot())["annotation"]
    assert ann["size"] == {"width": "4000", "height": "3000", "depth": "3"}
    objects = ann["object"]
    assert len(objects) == 2
    drawn = [int(objects[0]["bndbox"][k]) for k in ("xmin", "ymin", "xmax", "ymax")]
    expected = [4000 * fx[0] + 1, 3000 * fy[0] + 1, 4000 * fx[1], 3000 * fy[1]]
    # the box drawn on a ~720 px canvas comes back in the photo's own pixels (one screen pixel is ~5.5 here)
    assert drawn == pytest.approx(expected, abs=12)
