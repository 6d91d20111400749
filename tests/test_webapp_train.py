"""The Train tab's logic (fol_core/webapp/train.py): a zip with a folder per class in, a model in the session's
own folder out, offered in the model lists of that session only; names taken and server folders refused."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import raccoon_folder

from fol_core.errors import UserError, one_line
from fol_core.models import CARD
from fol_core.training.data import TrainingError
from fol_core.webapp import Access, AccessError, review
from fol_core.webapp import train as webtrain


@pytest.fixture
def access(tmp_path) -> Access:
    """A shared deployment: projects and models per browser session."""
    return Access(tmp_path / "exports", shared=False, models=tmp_path / "models")


@pytest.fixture
def labelled_zip(tmp_path, examples_dir) -> str:
    """A zip of photos/raccoon/ (4 raccoon photos) and photos/background/ (4 examples)."""
    raccoon_folder(tmp_path / "zip" / "photos", examples_dir)
    return shutil.make_archive(str(tmp_path / "photos"), "zip", tmp_path / "zip")


def test_models_go_in_the_session_folder_and_names_are_checked(access, tmp_path):
    own = webtrain.model_folder(access, "s1", "../../raccoon")
    assert own == access.models_root("s1") / "raccoon" and own.parent != access.models
    assert webtrain.model_folder(Access(tmp_path, models=tmp_path / "m"), None, "x") == tmp_path / "m" / "x"
    (access.models / "taken").mkdir(parents=True)
    (access.models / "taken" / CARD).write_text("{}")
    for name, message in (("", "Give the model a name"), ("taken", "already exists"), ("x.partial", "cannot end")):
        with pytest.raises(TrainingError, match=message) as exc:
            webtrain.model_folder(access, "s1", name)
        assert one_line(exc.value) == str(exc.value)
    for make in (lambda name: webtrain.model_folder(access, "s1", name), lambda name: review.project_folder(tmp_path, name)):
        with pytest.raises(UserError, match="too long a name"):  # before: the file system's own error, a crash
            make("a" * 300)


def test_a_zip_without_class_folders_is_named_without_its_server_path(access, tmp_path, examples_dir):
    (tmp_path / "flat").mkdir()
    shutil.copy(examples_dir / "chelsea.png", tmp_path / "flat")
    upload = shutil.make_archive(str(tmp_path / "uploads" / "flat"), "zip", tmp_path / "flat")
    with pytest.raises(TrainingError) as exc:
        webtrain.run(access, "s1", upload, None, "m", 1, False)
    assert str(exc.value).startswith("flat.zip: no image has a label") and str(tmp_path) not in str(exc.value)


def test_no_source_or_a_server_folder_when_folders_are_off_is_refused(access, tmp_path):
    with pytest.raises(TrainingError, match="Upload a zip"):
        webtrain.run(access, "s1", None, "", "m", 1, False)
    with pytest.raises(AccessError, match="turned off"):
        webtrain.run(access, "s1", None, str(tmp_path), "m", 1, False)
    allowed = Access(tmp_path / "exports", shared=False, folders=tmp_path / "shared", models=tmp_path / "models")
    (tmp_path / "shared").mkdir()
    with pytest.raises(AccessError, match="outside the folder"):
        webtrain.run(allowed, "s1", None, str(tmp_path), "m", 1, False)


def test_stages_to_fine_tune_outside_the_offered_range_are_refused(access, labelled_zip):
    for blocks in (-1, webtrain.MAX_TUNE_BLOCKS + 1):
        with pytest.raises(TrainingError, match="stages to fine-tune"):
            webtrain.run(access, "s1", labelled_zip, None, "m", 1, False, blocks)
    assert not access.models_root("s1").exists() or not any(access.models_root("s1").iterdir())


def test_history_in_long_form_for_the_plot():
    frame = webtrain.history_frame([{"epoch": 1, "train_loss": 0.7, "val_loss": 0.6, "val_accuracy": 0.5},
                                    {"epoch": 2, "train_loss": 0.5, "val_loss": 0.4, "val_accuracy": 0.75}])
    assert list(frame.columns) == ["epoch", "value", "series"] and len(frame) == 6
    assert frame[frame.series == "held-out accuracy"].value.tolist() == [0.5, 0.75]
    assert frame.epoch.unique().tolist() == ["1", "2"]  # whole epochs on the axis, never 1.5


@pytest.mark.slow
def test_train_from_a_zip_into_the_session_and_offer_it_there_only(access, labelled_zip):
    steps: list[tuple] = []
    view = webtrain.run(access, "s1", labelled_zip, None, "raccoon", 2, False, 0,
                        progress=webtrain.progress_steps(lambda done, **kw: steps.append(done), 2),
                        log=lambda s: None)
    assert steps == [(1, 2), (2, 2)]
    assert view.folder == access.models_root("s1") / "raccoon" and (view.folder / CARD).is_file()
    assert json.loads((view.folder / CARD).read_text())["training"]["tune_blocks"] == 0  # the head only, as asked
    assert "raccoon" in view.note and "held-out accuracy" in view.note
    assert sorted(set(view.history.series)) == ["held-out accuracy", "held-out loss", "training loss"]
    assert len(view.history) == 6
    assert ("raccoon (trained here)", str(view.folder)) in webtrain.model_choices(access, "s1")
    assert all(v != str(view.folder) for _, v in webtrain.model_choices(access, "s2"))
    with pytest.raises(TrainingError, match="already exists"):
        webtrain.run(access, "s1", labelled_zip, None, "raccoon", 1, False)
    access.end_session("s1")
    assert not view.folder.exists()


def test_the_model_lists_offer_only_models_whose_weights_are_here(access, tmp_path, monkeypatch):
    """A visitor cannot install weights: VGG16 without its file in torch's cache would only say where to put it."""
    import torch
    import torchvision

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    offered = [value for _, value in webtrain.model_choices(access, "s1")]
    assert offered[:3] == ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"] and "vgg16" not in offered
    cached = tmp_path / "hub" / "checkpoints" / torchvision.models.VGG16_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[1]
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"")
    assert "vgg16" in [value for _, value in webtrain.model_choices(access, "s1")]
