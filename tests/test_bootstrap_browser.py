"""The Pre-label and Review tabs in headless Chromium: pre-label a folder, nudge and accept, reject, export, download.

Skips where Debian's chromium is absent, unless FOL_REQUIRE_BROWSER=1 (CI), where it must run.
"""

from __future__ import annotations

import re
import shutil
import zipfile

import pytest
from browser_support import chromium_page, free_port, require_chromium
from playwright.sync_api import expect
from pycocotools.coco import COCO

from fol_core.bootstrap.project import open_project

require_chromium()


@pytest.fixture(scope="module")
def server(tmp_path_factory, examples_dir):
    """The app serving projects from a temporary exports/ folder, and a folder of photos to pre-label (allowed)."""
    import app

    root = tmp_path_factory.mktemp("browser")
    photos = root / "my photos"
    photos.mkdir()
    for name in ("chelsea.png", "coffee.png", "rocket.jpg"):
        shutil.copy(examples_dir / name, photos / name)
    saved, app.PROJECTS = app.PROJECTS, root / "exports"
    port = free_port()
    demo = app.serve("127.0.0.1", port, allow_folders=root, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/", photos, app.PROJECTS
    demo.close()
    app.PROJECTS = saved


@pytest.fixture(scope="module")
def page(server):
    with chromium_page(server[0]) as page:
        yield page


def _at(page, n: int) -> None:
    expect(page.locator("#review-position")).to_contain_text(re.compile(rf"^\s*{n} / "), timeout=120_000)


def test_prelabel_review_and_export_in_the_browser(page, server, tmp_path):
    _, photos, projects = server
    page.get_by_role("tab", name="Pre-label").click()
    page.fill("#prelabel-folder input, #prelabel-folder textarea", str(photos))
    page.fill("#prelabel-name input, #prelabel-name textarea", "pets")
    page.locator("#prelabel-method").get_by_label("CAM", exact=True).check()
    page.click("#prelabel-button")
    expect(page.locator("#prelabel-result")).to_contain_text("3 images in", timeout=300_000)

    page.get_by_role("tab", name="Review").click()
    expect(page.locator("#review-project input")).to_have_value("pets")  # the project just made, ready to open
    page.get_by_text("Queue", exact=True).click()  # not Gradio's "In queue: 1 of 1" status
    page.get_by_label("By file name").check()  # chelsea, coffee, rocket
    page.click("#review-open")
    _at(page, 1)
    expect(page.locator("#review-note")).to_contain_text("chelsea.png")
    expect(page.locator("#review-counts")).to_contain_text("3 pending")

    # nudge the cat's box: drag its middle 40 screen pixels to the right, then accept
    project = open_project(projects / "pets")
    before = next(r for r in project.images() if r.key == "chelsea.png").proposals[0]
    canvas = page.locator("#review-annotator canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 40, y, steps=8)
    page.mouse.up()
    page.click("#review-accept")
    _at(page, 2)
    page.click("#review-reject")
    _at(page, 3)
    expect(page.locator("#review-counts")).to_contain_text("1 accepted · 1 pending · 1 rejected")
    page.screenshot(path=str(tmp_path / "review.png"), full_page=True)

    cat = next(r for r in project.images() if r.key == "chelsea.png")
    assert cat.review == "accepted" and len(cat.boxes) == 1
    moved = cat.boxes[0]
    assert moved.x0 > before.x0 + 5 and moved.y0 == pytest.approx(before.y0, abs=2)  # moved right, in photo pixels
    assert moved.x1 - moved.x0 == pytest.approx(min(before.x1 - before.x0, cat.width - moved.x0), abs=2)
    assert next(r for r in project.images() if r.key == "coffee.png").review == "rejected"

    page.get_by_text("Export the project").click()
    page.click("#review-export")
    expect(page.get_by_text("Exported 1 image (accepted) to")).to_be_visible(timeout=300_000)
    link = page.locator("a[download=\"pets-coco.zip\"]")
    with page.expect_download() as download:
        link.click()
    archive = tmp_path / "coco.zip"
    download.value.save_as(archive)
    with zipfile.ZipFile(archive) as z:
        z.extractall(tmp_path / "coco")
    api = COCO(str(tmp_path / "coco" / "annotations.json"))
    (ann,) = api.loadAnns(api.getAnnIds())
    assert ann["bbox"][0] == pytest.approx(moved.x0, abs=0.01) and api.loadImgs(ann["image_id"])[0]["file_name"] == "chelsea.png"
    project.close()


def test_a_tab_holding_its_own_project_asks_before_it_is_left(page, tmp_path, examples_dir):
    """On a public server a tab's projects go with it when it closes: once it has made one, leaving asks first."""
    import app

    photos = tmp_path / "pets"
    photos.mkdir()
    for name in ("chelsea.png", "coffee.png"):
        shutil.copy(examples_dir / name, photos / name)
    archive = shutil.make_archive(str(tmp_path / "pets"), "zip", photos)
    saved, port = app.ACCESS, free_port()
    demo = app.serve("127.0.0.1", port, shared_projects=False, prevent_thread_lock=True, quiet=True)
    url = f"http://127.0.0.1:{port}/"
    context = page.context.browser.new_context(viewport={"width": 1366, "height": 1000})  # the module's browser
    try:
        tab = context.new_page()
        asked: list[str] = []
        tab.on("dialog", lambda dialog: (asked.append(dialog.type), dialog.accept()))
        tab.goto(url)
        tab.get_by_role("tab", name="Pre-label").click()  # a visit with clicks, and nothing made
        tab.goto("about:blank")
        assert asked == []
        tab.goto(url)
        tab.get_by_role("tab", name="Pre-label").click()
        tab.set_input_files("#prelabel-zip input[type=file]", archive)
        tab.locator("#prelabel-method").get_by_label("CAM", exact=True).check()
        tab.click("#prelabel-button")
        expect(tab.locator("#prelabel-result")).to_contain_text("2 images in", timeout=300_000)
        tab.locator("#prelabel-name input, #prelabel-name textarea").fill("")  # a run refused: no stale result
        tab.click("#prelabel-button")
        expect(tab.get_by_text("give the project a name").first).to_be_visible()
        expect(tab.locator("#prelabel-result")).not_to_contain_text("2 images in")
        tab.goto("about:blank")
        assert asked == ["beforeunload"]
    finally:
        context.close()
        demo.close()
        app.ACCESS = saved
