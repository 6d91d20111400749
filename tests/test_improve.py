"""`improve` (CLI and the Review tab's button): learn from accepted boxes, propose again only for what is not
reviewed, never touch a decision."""

from __future__ import annotations

import shutil

import pytest

from fol_core.bootstrap.prelabel import LabelRequest, open_run, run_prelabel
from fol_core.cli import main
from fol_core.engine import explain_photo
from fol_core.methods import create_method
from fol_core.webapp import review

PHOTOS = ("chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png")


@pytest.fixture
def project(tmp_path, model, examples_dir):
    """The examples and a copy of two of them, pre-labeled with CAM at its default threshold (0.3)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in PHOTOS:
        shutil.copy(examples_dir / name, src / name)
    for name in ("chelsea.png", "coffee.png"):
        shutil.copy(examples_dir / name, src / f"copy-{name}")
    project, new = open_run(str(src), str(tmp_path / "exports" / "demo"))
    assert new == 6
    run_prelabel(project, model, "cam")
    yield project
    project.close()


def _box(b):
    return round(b.x0), round(b.y0), round(b.x1), round(b.y1)


def _accept_loose_boxes(project, model) -> dict:
    """The reviewer accepts CAM's first box at threshold 0.1 (looser than the default 0.3) on three photos."""
    recs = {r.key: r for r in project.images()}
    loose = create_method("cam", model, threshold=0.1)
    wanted = {}
    for key in ("chelsea.png", "coffee.png", "rocket.jpg"):
        wanted[key] = explain_photo(project.source().open(key), loose, LabelRequest(project.label_map)).boxes[:1]
        project.decide(recs[key].id, "accept", wanted[key])
    return wanted


def test_improve_learns_the_reviewers_threshold_and_reproposes_only_unreviewed_images(project, model, capsys):
    recs = {r.key: r for r in project.images()}
    # too few accepted images: one line, nothing changed
    assert main(["improve", str(project.folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "at least 3" in err

    # the reviewer draws CAM's box at threshold 0.1 (looser than the default 0.3) on three photos, rejects one
    wanted = _accept_loose_boxes(project, model)
    assert any(_box(recs[k].proposals[0]) != _box(wanted[k][0]) for k in wanted)  # 0.3 drew other boxes
    project.decide(recs["astronaut.png"].id, "reject")
    decisions = project.decisions()

    assert main(["improve", str(project.folder)]) == 0
    out = capsys.readouterr().out
    assert "learned from 3 accepted images: threshold 0.3 -> " in out and "proposed again for 2 images" in out
    learned = project.meta("improve")
    assert learned["param"] == "threshold" and learned["value"] <= 0.15 and learned["reproposed"] == 2
    after = {r.key: r for r in project.images()}
    for key in ("chelsea.png", "coffee.png"):  # the copies now get the box the reviewer drew on the original
        assert [_box(b) for b in after[f"copy-{key}"].proposals[:1]] == [_box(b) for b in wanted[key]]
        assert after[f"copy-{key}"].review is None
    for key, boxes in wanted.items():  # decisions untouched
        assert after[key].review == "accepted" and [_box(b) for b in after[key].boxes] == [_box(b) for b in boxes]
    assert after["astronaut.png"].review == "rejected"
    assert project.decisions() == decisions
    assert project.meta("settings")["params"]["threshold"] == learned["value"]  # the next run keeps it
    for key in ("copy-chelsea.png", "copy-coffee.png"):  # accepted as proposed: nothing more to learn
        project.decide(after[key].id, "accept", after[key].proposals)
    assert main(["improve", str(project.folder)]) == 0
    out = capsys.readouterr().out
    assert f"threshold stays {learned['value']}" in out and "nothing to change" in out and "proposed again" not in out
    assert project.meta("improve") == learned  # no new run recorded


def test_review_tab_improves_at_the_same_image_and_refuses_with_unsaved_edits(project, model):
    state = review.start(project.folder, "name", "all")
    _accept_loose_boxes(project, model)
    names = project.file_names()
    state = review.jump(state, "copy-coffee.png")
    with pytest.raises(review.ProjectError, match="edits"):
        review.improve_proposals({**state, "edits": [{"boxes": []}]})
    steps = []
    fresh, note = review.improve_proposals(state, lambda done, total, key: steps.append((done, total)))
    assert names[fresh["ids"][fresh["pos"]]] == "copy-coffee.png"  # still the image the reviewer was on
    assert note.startswith("Learned from 3 accepted images") and "Proposed again for 3 images" in note
    assert steps[-1] == (3, 3)
    review.forget_under(project.folder.parent)
