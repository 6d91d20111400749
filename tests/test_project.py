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
