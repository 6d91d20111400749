"""Shared fixtures: the real default model (loaded once per session) and the real photos."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SHARED = ROOT.parent / "shared"
DEV_SET = SHARED / "data" / "imagenet-val-dev"
MAP = """
labels:
  cat: [domestic cat]
  dog: [dog]
  cup: [cup, espresso, coffee mug]
threshold: 0.1
"""
"""The user label map the pre-labeling tests use."""


SLOW_FIXTURES = {"model", "url", "prelabeled", "dev_set", "page", "server", "killed_run"}
"""Fixtures that load the model, serve the app, open a browser or run subprocesses: a test using one is slow."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark slow tests, so that `pytest -m "not slow"` is the fast tier."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


RACCOONS = SHARED / "data" / "raccoon-dev" / "JPEGImages"


def raccoon_folder(root: Path, examples_dir: Path) -> Path:
    """root/raccoon (4 raccoon photos) and root/background (the 4 examples): a tiny labelled set to train on;
    the calling test is skipped where ../shared is absent."""
    if not RACCOONS.is_dir():
        pytest.skip("../shared/data/raccoon-dev is not present")
    (root / "raccoon").mkdir(parents=True)
    for p in sorted(RACCOONS.glob("*.jpg"))[:4]:
        shutil.copy(p, root / "raccoon" / p.name)
    (root / "background").mkdir()
    for name in ("chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png"):
        shutil.copy(examples_dir / name, root / "background" / name)
    return root


def probabilities(model, image):
    """The classifier's (1000,) class probabilities for one PIL image."""
    return model.features(model.to_pixels(image))[1].softmax(-1)[0]


@pytest.fixture(scope="session")
def model():
    from fol_core.models import load_model

    return load_model()


@pytest.fixture(scope="session")
def examples_dir() -> Path:
    return EXAMPLES


@pytest.fixture(scope="session")
def dev_set() -> Path:
    if not (DEV_SET / "Annotations").is_dir():
        pytest.skip("../shared/data/imagenet-val-dev is not present")
    return DEV_SET


@pytest.fixture(scope="module")
def url(tmp_path_factory) -> str:
    """The app served on a free local port for one test module; its sessions' exports go to pytest's temp folder."""
    from browser_support import free_port

    import app

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tempfile, "tempdir", str(tmp_path_factory.mktemp("exports")))
        port = free_port()
        demo = app.serve("127.0.0.1", port, prevent_thread_lock=True, quiet=True)
        yield f"http://127.0.0.1:{port}/"
        demo.close()


@pytest.fixture
def tricky_folder(tmp_path, examples_dir) -> Path:
    """Real photos under awkward names: same names in two folders, spaces, unicode, label folders."""
    root = tmp_path / "photos"
    for rel, src in [
        ("cat/photo.png", "chelsea.png"),
        ("cup/photo.png", "coffee.png"),
        ("cup/Photo.PNG", "coffee.png"),
        ("hog/my cat ü.png", "chelsea.png"),
        ("rocket.jpg", "rocket.jpg"),
    ]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(examples_dir / src, root / rel)
    (root / ".hidden").mkdir()
    shutil.copy(examples_dir / "coffee.png", root / ".hidden" / "skip.png")
    (root / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def prelabeled(tmp_path_factory, model, examples_dir):
    """The examples (plus a label-folder copy) pre-labeled with Grad-CAM and a user map, in two runs."""
    from fol_core.bootstrap.prelabel import open_run, run_prelabel
    from fol_core.labelmap import LabelMap

    root = tmp_path_factory.mktemp("src")
    for name in ("chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png"):
        shutil.copy(examples_dir / name, root / name)
    (root / "dog").mkdir()
    shutil.copy(examples_dir / "chelsea.png", root / "dog" / "chelsea.png")  # a cat filed under "dog"
    out = tmp_path_factory.mktemp("exports") / "demo project"
    project, new = open_run(str(root), str(out), image_labels="folders")
    assert new == 5
    first = run_prelabel(project, model, "gradcam", label_map=LabelMap.parse(MAP), limit=2)
    assert (first.done, first.remaining) == (2, 3)
    project.close()
    project, new = open_run(str(root), str(out), image_labels="folders")  # started again: resumes
    assert new == 0
    second = run_prelabel(project, model, "gradcam")
    assert second.done == 3 and second.remaining == 0
    assert run_prelabel(project, model, "gradcam").done == 0  # nothing is redone
    return project
