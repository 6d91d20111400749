"""`train` on a few real photos: the model folder and its card, resume after an interruption, no half-written
model, the one-line refusals, and the trained model in localize (CAM and WSDDN) and prelabel."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import raccoon_folder

from fol_core.cli import main
from fol_core.errors import UserError
from fol_core.training.data import TrainingError, load_training_set
from fol_core.training.trainer import PARTIAL, Settings, train

TINY = Settings(epochs=2, patience=5, val_fraction=0.3)


@pytest.fixture
def labelled(tmp_path, examples_dir) -> Path:
    """4 raccoon photos and 4 negatives (the examples), a folder per class."""
    return raccoon_folder(tmp_path / "photos", examples_dir)


def test_a_class_with_too_few_images_is_refused_in_one_line(labelled):
    for p in sorted((labelled / "raccoon").iterdir())[2:]:
        p.unlink()
    with pytest.raises(TrainingError) as exc:
        load_training_set(str(labelled))
    assert "too few images" in str(exc.value) and "'raccoon' has 2" in str(exc.value)
    assert "\n" not in str(exc.value)


def test_one_class_without_negatives_is_refused(labelled, tmp_path):
    shutil.rmtree(labelled / "background")
    code = main(["train", str(labelled), "--out", str(tmp_path / "models" / "r")])
    assert code == 2
    assert not (tmp_path / "models" / "r").exists()
    with pytest.raises(TrainingError, match="only one class .* no negatives"):
        load_training_set(str(labelled))


def test_negatives_and_several_labels_from_a_csv(labelled):
    rows = ["image,label"] + [f"raccoon/{p.name},raccoon;animal" for p in sorted((labelled / "raccoon").iterdir())]
    rows += [f"background/{p.name},none" for p in sorted((labelled / "background").iterdir())]
    (labelled / "labels.csv").write_text("\n".join(rows))
    data = load_training_set(str(labelled), str(labelled / "labels.csv"))
    assert data.classes == ["animal", "raccoon"] and data.negatives == 4
    assert all(e.labels == {"animal", "raccoon"} for e in data.train + data.val if e.labels)


def test_a_folder_without_a_card_is_not_a_model(tmp_path):
    from fol_core.models import load_model

    with pytest.raises(UserError, match="not a trained model folder"):
        load_model(str(tmp_path))


@pytest.mark.slow
def test_train_interrupt_resume_and_use_the_model(labelled, tmp_path, examples_dir):
    out = tmp_path / "models" / "raccoon"

    def stop(row):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(str(labelled), out, Settings(**{**TINY.__dict__, "wsddn": True}), progress=stop, log=lambda s: None)
    partial = out.with_name(out.name + PARTIAL)
    assert not out.exists() and (partial / "checkpoint.pt").is_file()  # never a half-written model

    lines: list[str] = []
    result = train(str(labelled), out, Settings(**{**TINY.__dict__, "wsddn": True}), log=lines.append)
    assert result.resumed_from == 1 and any("resuming" in s for s in lines)
    assert not partial.exists()
    assert sorted(p.name for p in out.iterdir()) == ["card.json", "model.safetensors"]
    card = json.loads((out / "card.json").read_text())
    assert card["classes"] == ["raccoon"] and card["backbone"] == "efficientnet_lite0"
    assert [row["epoch"] for row in card["history"]] == [1, 2]
    assert 0.0 <= card["metrics"]["val_accuracy"] <= 1.0 and card["training"]["seed"] == 0
    assert card["preprocessing"]["input_size"] == 224 and "wsddn" in card

    with pytest.raises(TrainingError, match="already exists"):
        train(str(labelled), out, TINY)

    photo = next((labelled / "raccoon").iterdir())
    for method in ("cam", "gradcam", "fol", "wsddn"):
        code = main(["localize", str(photo), "--model", str(out), "--method", method, "--classes", "raccoon",
                     "--out", str(tmp_path / method)])
        assert code == 0
        data = json.loads((tmp_path / method / f"{photo.stem}.json").read_text())
        assert data["boxes"] and {b["label"] for b in data["boxes"]} == {"raccoon"}
        assert [t["label"] for t in data["top5"]] == ["raccoon"]

    code = main(["prelabel", str(labelled), "--model", str(out), "--method", "cam", "--out", str(tmp_path / "p")])
    assert code == 0
    from fol_core.bootstrap.project import open_project

    project = open_project(tmp_path / "p")
    assert project.labels() == ["raccoon"]
    assert all(b.label == "raccoon" for r in project.images() for b in r.proposals)
    project.close()


def test_wsddn_proposals_add_selective_search_and_windows(examples_dir):
    import numpy as np
    import torch
    from PIL import Image

    from fol_core.methods.wsddn import MIN_SIDE, proposal_boxes, selective_search, sliding_windows

    photo = Image.open(examples_dir / "chelsea.png").convert("RGB").resize((224, 224))
    pixels = torch.from_numpy(np.asarray(photo).copy()).permute(2, 0, 1).float() / 255.0
    found = np.array(selective_search(pixels))
    assert len(found) >= 20 and found.min() >= 0 and found.max() <= 224
    assert ((found[:, 2:] - found[:, :2]) >= MIN_SIDE * 224).all()
    windows = np.array(sliding_windows(224))
    assert windows.min() >= 0 and windows.max() <= 224 and len(windows) > 50
    heat = np.zeros((224, 224), np.float32)
    heat[50:150, 60:120] = 1.0
    only_maps = proposal_boxes([heat], pixels, ("heatmaps",))
    assert len(only_maps) == 2  # the whole photo and the blob
    assert len(proposal_boxes([heat], pixels, ("heatmaps", "selective_search"))) > 20


def test_unknown_proposals_are_refused_in_one_line(labelled, tmp_path, capsys):
    code = main(["train", str(labelled), "--out", str(tmp_path / "m"), "--wsddn", "--proposals", "edgeboxes"])
    assert code == 2 and not (tmp_path / "m").exists()
    err = capsys.readouterr().err
    assert "unknown edgeboxes" in err and err.count("\n") == 1
