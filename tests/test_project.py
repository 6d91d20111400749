"""The project store: a folder holds one project and is never taken over."""

from __future__ import annotations

import pytest

from fol_core.bootstrap.project import Project, ProjectError
from fol_core.bootstrap.sources import source_spec


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


def _proposed(tmp_path, examples_dir) -> Project:
    """A project of the example photos, each with one proposed box (no model needed)."""
    from fol_core.bootstrap.prelabel import open_run
    from fol_core.result import Box

    project, _ = open_run(str(examples_dir), str(tmp_path / "p"))
    for rec in project.images():
        project.save_prelabel(rec.id, stage="proposed", width=200, height=100, confidence=0.5,
                              proposals=[Box(10.0, 10.0, 50.0, 60.0, "cat", 281, 0.5, "cam")])
    return project


def test_undo_restores_the_previous_review_and_is_journaled(tmp_path, examples_dir):
    from fol_core.result import Box

    project = _proposed(tmp_path, examples_dir)
    a, b = (r.id for r in project.images()[:2])
    first = project.decide(a, "accept", [Box(1.0, 2.0, 30.0, 40.0, "dog", -1, 1.0, "review")])
    second = project.decide(a, "reject")
    assert project.image(a).review == "rejected" and project.image(a).boxes[0].label == "dog"
    with pytest.raises(ProjectError, match="decided again since"):
        project.undo(first.decision)  # the reject is still in force
    back = project.undo(second.decision)
    assert back.review == "accepted" and [x.label for x in back.boxes] == ["dog"]
    again = project.undo(first.decision)
    assert again.review is None and again.boxes is None and again.status == "pending"
    with pytest.raises(ProjectError, match="already undone"):
        project.undo(first.decision)
    with pytest.raises(ProjectError, match="cannot be undone"):
        project.undo(again.decision)
    skipped = project.decide(b, "skip")
    assert project.undo(skipped.decision).review is None
    journal = project.decisions(a)
    assert [d["action"] for d in journal] == ["accept", "reject", "undo", "undo"]
    assert [d["undoes"] for d in journal] == [None, None, second.decision, first.decision]
    assert project.counts()["pending"] == len(project.images())
    project.close()


def test_a_journal_from_before_undo_gets_the_new_columns(tmp_path, examples_dir):
    import sqlite3

    project = _proposed(tmp_path, examples_dir)
    folder, image = project.folder, project.images()[0].id
    project.close()
    db = sqlite3.connect(folder / "project.sqlite")  # the journal as the first release wrote it
    db.execute("DROP TABLE decisions")
    db.execute("CREATE TABLE decisions (id INTEGER PRIMARY KEY, image_id INTEGER NOT NULL, action TEXT NOT NULL,"
               " boxes TEXT, at REAL NOT NULL)")
    db.execute("INSERT INTO decisions(image_id, action, at) VALUES (?, 'reject', 0)", (image,))
    db.commit()
    db.close()
    project = Project(folder)
    with pytest.raises(ProjectError, match="before undo was recorded"):
        project.undo(1)
    assert project.undo(project.decide(image, "accept", []).decision).review is None
    project.close()
