"""The Review tab in headless Chromium, keyboard first: relabel (keys and picker), delete from the side list,
undo a box edit and a decision, accept / reject / skip / next / previous by key, and quick clicking after
double-clicks, which must never decide an image the canvas does not show. Plus: Localize starts in select mode.

One server and one page for the module; the project is the example photos pre-labeled with CAM (fast).
Skips where Debian's chromium is absent, unless FOL_REQUIRE_BROWSER=1 (CI), where it must run.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import replace

import pytest
from browser_support import chromium_page, free_port, require_chromium
from conftest import MAP
from playwright.sync_api import expect

from fol_core.bootstrap.prelabel import prelabel_folder
from fol_core.bootstrap.project import open_project

require_chromium()
expect.set_options(timeout=20_000)


@pytest.fixture(scope="module")
def server(tmp_path_factory, examples_dir, model):
    """The app serving a temporary exports/ folder that holds the examples pre-labeled with CAM."""
    import app

    root = tmp_path_factory.mktemp("review") / "exports"
    project, _, _ = prelabel_folder(str(examples_dir), root / "pets", MAP, method="cam", model=model)
    project.close()
    saved, app.PROJECTS = app.PROJECTS, root
    port = free_port()
    demo = app.serve("127.0.0.1", port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/", root / "pets"
    demo.close()
    app.PROJECTS = saved


@pytest.fixture(scope="module")
def page(server):
    with chromium_page(server[0]) as page:
        page.set_viewport_size({"width": 1400, "height": 1000})
        page.set_default_timeout(30_000)
        yield page


def _at(page, n: int) -> None:
    """At image n, and the canvas shows it (a key pressed before the photo is drawn is refused, by design)."""
    expect(page.locator("#review-position")).to_contain_text(re.compile(rf"^\s*{n} / "))
    page.wait_for_function(
        "() => { const t = document.querySelector('#review-token textarea, #review-token input');"
        " return t !== null && window.folDrawn === t.value; }"
    )


def _labels(page) -> list[str]:
    return page.locator("#review-boxes label").all_inner_texts()


def _open(page, show: str = "all", name: str = "pets") -> None:
    page.get_by_role("tab", name="Review").click()
    page.locator("#review-project input").click()
    page.get_by_role("option", name=name, exact=True).click()
    page.get_by_text("Queue", exact=True).click()  # not Gradio's "In queue: 1 of 1" status
    page.get_by_label("By file name").check()  # astronaut, chelsea, coffee, rocket
    page.get_by_role("radio", name=show, exact=True).check()
    page.get_by_text("Queue", exact=True).click()  # not Gradio's "In queue: 1 of 1" status
    page.click("#review-open")
    _at(page, 1)


def _to_image_with_boxes(page) -> int:
    """Move on (→) to the first image with a proposed box; its position."""
    for n in range(1, 5):
        _at(page, n)
        page.wait_for_timeout(300)
        if page.locator("#review-boxes input[type=radio]").count():
            return n
        page.keyboard.press("ArrowRight")
    raise AssertionError("no example photo got a box")


def test_keyboard_review_relabel_delete_undo_and_decide(page, server):
    _, folder = server
    _open(page)
    page.keyboard.press("z")  # nothing to undo yet: a warning, and the photo stays on screen
    expect(page.get_by_text("No box edit to undo").first).to_be_visible()
    page.wait_for_timeout(500)
    assert page.locator("#review-annotator canvas").is_visible()
    expect(page.locator("#review-annotator")).not_to_contain_text("Error")
    page.keyboard.press("ArrowRight")
    _at(page, 2)
    page.keyboard.press("ArrowLeft")
    _at(page, 1)
    n = _to_image_with_boxes(page)
    first = _labels(page)
    assert first and re.match(r"1: \w", first[0])
    # relabel with the picker (a new label, typed), then with key 2; the canvas shows the number and label
    picker = page.locator("#review-label input")
    picker.fill("teapot")
    picker.press("Enter")
    expect(page.locator("#review-boxes")).to_contain_text("1: teapot")
    page.locator("#review-annotator canvas").click(position={"x": 5, "y": 5})  # focus leaves the picker
    page.keyboard.press("2")
    expect(page.locator("#review-boxes")).to_contain_text("1: dog")  # MAP's second label
    page.keyboard.press("z")  # undo within the image
    expect(page.locator("#review-boxes")).to_contain_text("1: teapot")
    # delete from the side list, undo it, accept by key
    page.locator("#review-boxes label").first.click()
    page.click("#review-delete")
    expect(page.locator("#review-boxes input[type=radio]")).to_have_count(len(first) - 1)
    page.keyboard.press("z")
    expect(page.locator("#review-boxes input[type=radio]")).to_have_count(len(first))
    page.locator("#review-annotator canvas").click(position={"x": 5, "y": 5})  # the canvas takes the focus
    page.keyboard.press("b")  # ... and B hands Delete back to the side list (the canvas's own Delete did nothing)
    page.keyboard.press("Delete")
    expect(page.locator("#review-boxes input[type=radio]")).to_have_count(len(first) - 1)
    page.keyboard.press("z")
    expect(page.locator("#review-boxes input[type=radio]")).to_have_count(len(first))
    page.keyboard.press("Enter")
    _at(page, n + 1)
    page.keyboard.press("r")
    _at(page, min(n + 2, 4))
    project = open_project(folder)
    recs = {r.file_name: r for r in project.images()}
    accepted = [r for r in recs.values() if r.review == "accepted"]
    assert len(accepted) == 1 and accepted[0].boxes[0].label == "teapot"
    assert sum(r.review == "rejected" for r in recs.values()) == 1
    # undo the reject, then the accept: both images pending again, the journal says so
    page.keyboard.press("u")
    _at(page, n + 1)
    page.keyboard.press("u")
    _at(page, n)
    expect(page.locator("#review-counts")).to_contain_text("0 accepted")
    page.keyboard.press("s")
    _at(page, n + 1)
    assert [d["action"] for d in project.decisions()] == ["accept", "reject", "undo", "undo", "skip"]
    assert all(r.review is None for r in project.images())
    project.close()
    page.screenshot(path="/tmp/fol-review-keyboard.png")


def test_quick_clicks_after_double_clicks_never_decide_an_unseen_image(page, server):
    _, folder = server
    _open(page)
    canvas = page.locator("#review-annotator canvas")
    box = canvas.bounding_box()
    for _ in range(6):  # as fast as the browser goes: double-click a box, accept, no waiting
        page.mouse.dblclick(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.keyboard.press("Escape")  # close the annotator's own label dialog, if it opened
        page.click("#review-accept")
    page.wait_for_timeout(3000)
    # the canvas shows the photo the panel describes, once the clicks' events are through (a loaded CPU is slower)
    page.wait_for_function("""() => {
        const t = document.querySelector('#review-token textarea, #review-token input');
        return t && window.folDrawn === t.value;
    }""", timeout=30_000)
    project = open_project(folder)
    token = page.locator("#review-token textarea, #review-token input").input_value()
    name = page.locator("#review-note strong").first.inner_text()
    assert token.endswith(f"-{next(r.id for r in project.images() if r.file_name == name)}")
    for d in project.decisions():
        if d["action"] == "accept":  # every accepted image kept boxes of its own (never another image's)
            rec = project.image(d["image_id"])  # (pending again where an earlier test undid its accept)
            assert all(b in rec.proposals for b in rec.boxes or [])
    project.close()


def test_a_box_drawn_on_the_canvas_is_labelled_and_accepted(page, server, examples_dir, model):
    """In a project without a label map (ImageNet's names): the mouse going down used to redraw the canvas, which
    ended the drag, and the annotator's label dialog failed on an empty label list, which froze the canvas."""
    _, folder = server
    prelabel_folder(str(examples_dir), folder.parent / "plain", method="cam", model=model)
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    page.get_by_role("tab", name="Localize").click()  # the Review tab lists the projects again when shown
    _open(page, name="plain")
    before = _labels(page)
    page.keyboard.press("c")  # the box tool, from the keyboard
    canvas = page.locator("#review-annotator canvas").bounding_box()
    x, y = canvas["x"] + canvas["width"] * 0.4, canvas["y"] + canvas["height"] * 0.4
    page.mouse.move(x, y)
    page.mouse.down()
    for step in range(1, 9):
        page.mouse.move(x + step * 12, y + step * 10)
        page.wait_for_timeout(50)
    page.mouse.up()
    dialog = page.locator("#model-box-edit")
    expect(dialog).to_be_visible()  # the annotator's own, its label field focused: type a label, Enter
    expect(dialog.locator("input[role=listbox]")).to_be_focused()
    page.wait_for_timeout(300)  # as a person would, before typing
    label = "kettle"
    page.keyboard.type(label)
    page.keyboard.press("Enter")
    expect(page.locator("#review-boxes label")).to_have_count(len(before) + 1)
    expect(page.locator("#review-boxes label").last).to_have_text(f"{len(before) + 1}: {label}")
    page.locator("#review-annotator canvas").click(position={"x": 5, "y": 5})  # focus back on the page's keys
    page.keyboard.press("Enter")
    _at(page, 2)
    project = open_project(folder.parent / "plain")
    drawn = [b for r in project.images() if r.review == "accepted" for b in r.boxes if b.method == "review"]
    project.close()
    assert len(drawn) == 1 and drawn[0].label == label and drawn[0].x1 - drawn[0].x0 > 20 < drawn[0].y1 - drawn[0].y0
    assert not errors


def test_localize_starts_in_select_mode(page):
    page.get_by_role("tab", name="Localize").click()
    page.get_by_label("CAM", exact=True).check()
    page.locator("#example-gallery img").first.click()  # an example runs at once
    expect(page.locator("#annotator canvas")).to_be_visible(timeout=120_000)
    expect(page.locator("#annotator button[aria-label='Drag boxes']")).to_have_class(re.compile("selected"))
    expect(page.locator("#annotator button[aria-label='Create box']")).not_to_have_class(re.compile("selected"))
    expect(page.locator("#annotator button[aria-label^='Rotate']").first).to_be_hidden()


def test_improve_the_proposals_from_the_review_tab(page, server, tmp_path, examples_dir, model):
    """Three images accepted earlier, each box drawn a quarter larger than proposed: the button learns from them,
    proposes again for the five others and stays on the image shown."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png"):
        shutil.copy(examples_dir / name, src / name)
        shutil.copy(examples_dir / name, src / f"copy-{name}")
    project, _, _ = prelabel_folder(str(src), server[1].parent / "more", None, method="cam", model=model)
    for rec in [r for r in project.images() if not r.key.startswith("copy-")][:3]:
        grown = [replace(b, x0=max(0.0, b.x0 - (b.x1 - b.x0) / 8), y0=max(0.0, b.y0 - (b.y1 - b.y0) / 8),
                         x1=min(rec.width, b.x1 + (b.x1 - b.x0) / 8), y1=min(rec.height, b.y1 + (b.y1 - b.y0) / 8))
                 for b in rec.proposals]
        project.decide(rec.id, "accept", grown)  # (accepted as proposed, there would be nothing to learn)
    project.close()
    page.goto(server[0])
    page.get_by_role("tab", name="Review").click()
    page.get_by_role("button", name="↻").click()  # the list as the server has it now
    page.wait_for_timeout(1000)
    _open(page, name="more")
    page.keyboard.press("ArrowRight")
    _at(page, 2)
    page.get_by_text("Improve the proposals", exact=True).first.click()
    page.click("#review-improve")
    expect(page.locator("#review-improved")).to_contain_text("Learned from 3 accepted images", timeout=120_000)
    expect(page.locator("#review-improved")).to_contain_text("Proposed again for 5 images")
    _at(page, 2)
    project = open_project(server[1].parent / "more")
    assert project.meta("improve")["reproposed"] == 5 and project.counts()["accepted"] == 3
    project.close()
