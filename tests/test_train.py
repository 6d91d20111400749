"""`train` on a few real photos: the model folder and its card, resume after an interruption, no half-written
model, the one-line refusals, and the trained model in localize (CAM and WSDDN) and prelabel."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
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


def test_a_model_folder_being_trained_is_not_trained_into_again(labelled, tmp_path, capsys):
    from fol_core.paths import exclusive

    out = tmp_path / "models" / "r"
    with exclusive(out, "trained"):  # as another training holds it
        assert main(["train", str(labelled), "--out", str(out), "--epochs", "1"]) == 2
    assert "r is being trained by another run" in capsys.readouterr().err and not out.exists()


def test_one_class_without_negatives_is_refused(labelled, tmp_path):
    shutil.rmtree(labelled / "background")
    code = main(["train", str(labelled), "--out", str(tmp_path / "models" / "r")])
    assert code == 2
    assert list((tmp_path / "models").iterdir()) == []  # neither the model nor an empty run to resume
    with pytest.raises(TrainingError, match="only one class .* no negatives"):
        load_training_set(str(labelled))


def test_negatives_and_several_labels_from_a_csv(labelled):
    rows = ["image,label"] + [f"raccoon/{p.name},raccoon;animal" for p in sorted((labelled / "raccoon").iterdir())]
    rows += [f"background/{p.name},none" for p in sorted((labelled / "background").iterdir())[1:]]
    (labelled / "labels.csv").write_text("\n".join([*rows, "ghost.jpg,raccoon"]))
    data = load_training_set(str(labelled), str(labelled / "labels.csv"))
    assert data.classes == ["animal", "raccoon"] and data.negatives == 3
    assert data.unlabelled == 1 and any("1 CSV row" in n for n in data.source.notes)  # train prints both
    assert all(e.labels == {"animal", "raccoon"} for e in data.train + data.val if e.labels)


def test_an_unreadable_photo_is_named_once_and_left_out(labelled):
    from fol_core.training.trainer import _preload

    (labelled / "raccoon" / "broken.jpg").write_bytes(b"not a jpeg")
    data = load_training_set(str(labelled))
    kept, problems = _preload(data, data.train + data.val, 32)
    assert problems == ["skipped raccoon/broken.jpg: not an image file Pillow can read"]
    assert len(kept) == 8 and all(t.shape == (3, 32, 32) for _, t in kept)


def test_a_folder_without_a_card_is_not_a_model(tmp_path):
    from fol_core.models import load_model

    with pytest.raises(UserError, match="not a trained model folder"):
        load_model(str(tmp_path))


@pytest.mark.slow
def test_train_interrupt_resume_and_use_the_model(labelled, tmp_path, examples_dir):
    out = tmp_path / "models" / "raccoon"

    def stop(row):
        raise KeyboardInterrupt

    shutil.copy(labelled / "raccoon" / min(p.name for p in (labelled / "raccoon").iterdir()), labelled / "stray.jpg")
    with pytest.raises(KeyboardInterrupt):
        train(str(labelled), out, Settings(**{**TINY.__dict__, "wsddn": True}), progress=stop, log=lambda s: None)
    partial = out.with_name(out.name + PARTIAL)
    assert not out.exists() and (partial / "checkpoint.pt").is_file()  # never a half-written model

    lines: list[str] = []
    result = train(str(labelled), out, Settings(**{**TINY.__dict__, "wsddn": True}), log=lines.append)
    assert result.resumed_from == 1 and any("resuming" in s for s in lines)
    assert "note: 1 image(s) have no label and were left out" in " ".join(lines)  # the photo beside the folders
    assert not partial.exists()
    assert sorted(p.name for p in out.iterdir()) == ["card.json", "model.safetensors"]
    card = json.loads((out / "card.json").read_text())
    assert card["classes"] == ["raccoon"] and card["backbone"] == "efficientnet_lite0"
    assert [row["epoch"] for row in card["history"]] == [1, 2]
    assert 0.0 <= card["metrics"]["val_accuracy"] <= 1.0 and card["training"]["seed"] == 0
    assert card["preprocessing"]["input_size"] == 224 and "wsddn" in card

    with pytest.raises(TrainingError, match="already exists"):
        train(str(labelled), out, TINY)

    assert card["wsddn"]["head"].startswith("OICR: 3 refinement streams") and card["training"]["refine"] == 3
    photo = next((labelled / "raccoon").iterdir())
    for method, more in (("cam", []), ("gradcam", []), ("fol", []), ("wsddn", []), ("wsddn", ["--score", "oicr"]),
                         ("wsddn", ["--scales", "224,320", "--score", "oicr"]), ("wsddn", ["--min-ratio", "0"])):
        where = tmp_path / f"{method}{len(more)}"
        code = main(["localize", str(photo), "--model", str(out), "--method", method, "--classes", "raccoon",
                     "--out", str(where), *more])
        assert code == 0
        data = json.loads((where / f"{photo.stem}.json").read_text())
        assert data["boxes"] and {b["label"] for b in data["boxes"]} == {"raccoon"}
        if more == ["--min-ratio", "0"]:  # every region after NMS: each keeps its own rank, the best first
            scores = [b["score"] for b in data["boxes"]]
            assert len(scores) > 1 and scores == sorted(scores, reverse=True) and scores[-1] < scores[0]
        assert [t["label"] for t in data["top5"]] == ["raccoon"]

    # WSDDN's first box is mscam's (the multi-scale map's region, cut in the model's square frame), the rest below it
    first = {}
    for method in ("mscam", "wsddn"):
        code = main(["localize", str(photo), "--model", str(out), "--method", method, "--classes", "raccoon",
                     "--out", str(tmp_path / f"first-{method}")])
        assert code == 0
        first[method] = json.loads((tmp_path / f"first-{method}" / f"{photo.stem}.json").read_text())
    side = max(first["mscam"]["width"], first["mscam"]["height"])
    ms, ws = first["mscam"]["boxes"][0], first["wsddn"]["boxes"][0]
    assert all(abs(ms[k] - ws[k]) <= 0.02 * side for k in ("x0", "y0", "x1", "y1"))
    assert all(b["score"] < ws["score"] for b in first["wsddn"]["boxes"][1:])

    code = main(["prelabel", str(labelled), "--model", str(out), "--method", "cam", "--out", str(tmp_path / "p")])
    assert code == 0
    from fol_core.bootstrap.project import open_project

    project = open_project(tmp_path / "p")
    assert project.labels() == ["raccoon"]
    assert all(b.label == "raccoon" for r in project.images() for b in r.proposals)
    project.close()

    # the app's Pre-label tab with the trained model chosen: a zip of the raccoon photos, boxes by WSDDN
    from fol_core.webapp import prelabel as prelabel_tab

    archive = shutil.make_archive(str(tmp_path / "raccoons"), "zip", labelled / "raccoon")
    note = prelabel_tab.run(tmp_path / "exports", None, archive, "mine", "", "none", None, "wsddn", 0, False,
                            model_name=str(out))
    assert "**mine**: 4 new images" in note
    project = open_project(tmp_path / "exports" / "mine")
    assert project.meta("settings")["model"] == str(out) and project.labels() == ["raccoon"]
    assert all(r.proposals and {b.label for b in r.proposals} == {"raccoon"} for r in project.images())
    project.close()

    with pytest.raises(UserError, match="the classes of raccoon, the model it was pre-labeled with"):  # not a crash
        prelabel_tab.run(tmp_path / "exports", None, archive, "mine", "", "none", None, "cam", 0, False)
    from fol_core.models import load_model
    from fol_core.training.improve import improve

    project = open_project(tmp_path / "exports" / "mine")
    with pytest.raises(UserError, match="pre-labeled with: improve it with that model"):
        improve(project, load_model("efficientnet_lite0"))
    project.close()

    # the Dataset map tab on that project: its model is offered first; the ImageNet model's map drops the labels
    from fol_core import webapp
    from fol_core.webapp import dataset_map

    assert dataset_map.project_model(tmp_path / "exports", "mine") == str(out)
    workdir = webapp.workdir()
    try:
        for model_name, framed in ((str(out), "framed by predicted user label"), ("efficientnet_lite0", "predicted class")):
            view = dataset_map.make_map(dataset_map.SOURCES[1], None, tmp_path / "exports", "mine", model_name, 1000,
                                        workdir, progress=False)
            assert framed in view.summary
            assert ("labels name another model" in view.summary) == (model_name != str(out))
    finally:
        webapp.remove_workdir(workdir)


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


def test_oicr_pseudo_labels_mark_several_objects_and_their_neighbours():
    import torch

    from fol_core.methods.wsddn import pseudo_labels

    boxes = torch.tensor([[0, 0, 50, 50], [2, 2, 50, 52], [100, 100, 150, 150], [104, 100, 150, 150],
                          [200, 0, 220, 20], [0, 0, 224, 224]], dtype=torch.float32)
    scores = torch.tensor([[0.9], [0.5], [0.6], [0.3], [0.1], [0.2]])
    labels, weights = pseudo_labels(scores, boxes, torch.tensor([True]))
    assert labels.tolist() == [0, 0, 0, 0, 1, 1]  # two objects (0.6 >= 0.5 x 0.9) and their neighbours; the rest bg
    assert weights[:2].tolist() == pytest.approx([0.9, 0.9]) and weights[2:4].tolist() == pytest.approx([0.6, 0.6])
    labels, weights = pseudo_labels(scores, boxes, torch.tensor([False]))
    assert labels.tolist() == [1] * 6 and weights.tolist() == [1.0] * 6  # a negative: all background


def test_seed_score_prefers_the_whole_object_to_its_most_telling_part():
    import torch

    from fol_core.methods.wsddn import class_maps, seed_scores

    activation = torch.zeros(2, 7, 7)
    activation[0, 2:5, 2:5] = 1.0
    activation[0, 3, 3] = 5.0  # a peak (the face) inside the object
    boxes = torch.tensor([[96, 96, 128, 128], [64, 64, 160, 160], [0, 0, 224, 224]], dtype=torch.float32)
    seed = seed_scores(class_maps(activation, torch.tensor([[1.0, 0.0]])), boxes, 224)
    assert int(seed[:, 0].argmax()) == 1 and float(seed.max()) == 1.0 and float(seed.min()) >= 0.0


def test_oicr_streams_learn_their_pseudo_labels_and_round_trip():
    import torch

    from fol_core.methods.wsddn import OICRHead
    from fol_core.training.wsddn import oicr_loss

    torch.manual_seed(0)
    feats = torch.randn(6, 8)
    boxes = torch.tensor([[0, 0, 50, 50], [2, 2, 50, 52], [100, 100, 150, 150], [104, 100, 150, 150],
                          [200, 0, 220, 20], [0, 0, 224, 224]], dtype=torch.float32)
    region = {"feats": feats, "boxes": boxes, "seed": torch.tensor([[1.0], [0.5], [0.0], [0.0], [0.0], [0.0]])}
    head = OICRHead(8, 1, streams=2, dropout=0.0)
    optimizer = torch.optim.AdamW(head.parameters(), lr=0.05)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is ~50x faster on a loaded machine
    try:
        first = float(oicr_loss(head, region, torch.tensor([True])).detach())
        for _ in range(100):
            loss = oicr_loss(head, region, torch.tensor([True]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    assert float(loss.detach()) < first / 3
    again = OICRHead.from_tensors(head.tensors())
    assert len(again.refine) == 2
    assert torch.allclose(again(feats), head.eval()(feats))
    assert again(feats)[:2, 0].min() > again(feats)[2:, 0].max()  # the seed's object and its neighbour


def test_score_oicr_on_a_model_without_refined_streams_is_refused_in_one_line():
    from types import SimpleNamespace

    import torch

    from fol_core.methods.params import ParamError
    from fol_core.methods.wsddn import WSDDN

    old = SimpleNamespace(name="old", imagenet=False, spec=SimpleNamespace(classifier="classifier", cam_layer="conv_head"),
                          layer=lambda name: torch.nn.Linear(4, 1), card={"wsddn": {}},
                          extra={"wsddn.det.weight": torch.zeros(1, 4)})
    assert WSDDN.unavailable(old) is None
    with pytest.raises(ParamError, match="train old again with") as exc:
        WSDDN(old, score="oicr")
    assert "\n" not in str(exc.value)


@pytest.mark.slow
def test_tune_blocks_saves_and_loads_the_fine_tuned_layers(labelled, tmp_path):
    from safetensors.torch import load_file

    from fol_core.methods import create_method
    from fol_core.models import load_model

    out = tmp_path / "models" / "tuned"
    result = train(str(labelled), out, Settings(**{**TINY.__dict__, "tune_blocks": 1}), log=lambda s: None)
    assert result.card["tuned_layers"] == ["blocks.6", "conv_head", "bn2"]
    saved = load_file(out / "model.safetensors")
    assert "blocks.6.0.conv_pw.weight" in saved and "conv_head.weight" in saved and "classifier.weight" in saved
    trained, imagenet = load_model(str(out)), load_model()
    own, base = trained.net.state_dict(), imagenet.net.state_dict()
    assert not torch.equal(own["blocks.6.0.conv_pw.weight"], base["blocks.6.0.conv_pw.weight"])
    assert torch.equal(own["blocks.5.0.conv_pw.weight"], base["blocks.5.0.conv_pw.weight"])  # frozen
    assert not trained.extra  # every saved tensor went into the network
    # the loaded model scores the held-out photos as the training run did (its card's held-out loss)
    data = load_training_set(str(labelled), val_fraction=TINY.val_fraction, seed=TINY.seed)
    logits = trained.features(torch.cat([trained.to_pixels(data.source.open(e.key)) for e in data.val]))[1]
    targets = torch.tensor([[float(bool(e.labels))] for e in data.val])
    positives = sum(bool(e.labels) for e in data.train)
    weight = torch.tensor([min(max((len(data.train) - positives) / positives, 1.0), 10.0)])
    loss = float(torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, pos_weight=weight))
    assert loss == pytest.approx(result.card["metrics"]["val_loss"], rel=0.05, abs=0.005)
    # a trained model's heatmaps are cut at the thresholds measured for trained models, not ImageNet's
    for name in ("mscam", "cam"):
        m = create_method(name, trained)
        tuned = m.tuned()
        assert m.threshold == tuned.trained_default != tuned.default
        assert create_method(name, imagenet).threshold == tuned.default
    code = main(["localize", str(next((labelled / "raccoon").iterdir())), "--model", str(out), "--method", "mscam",
                 "--classes", "raccoon", "--out", str(tmp_path / "loc")])
    assert code == 0


@pytest.mark.slow
def test_tune_blocks_beyond_the_backbone_is_refused_in_one_line(labelled, tmp_path, capsys):
    code = main(["train", str(labelled), "--out", str(tmp_path / "m"), "--tune-blocks", "8"])
    assert code == 2 and not (tmp_path / "m").exists()
    err = capsys.readouterr().err
    assert "has 7 stages (got 8)" in err and err.count("\n") == 1


@pytest.mark.slow  # starts a subprocess
def test_training_reuses_freed_memory_instead_of_faulting_it_in_again():
    """Measured in a fresh process: earlier tests' allocations change what glibc's malloc does next."""
    import platform
    import subprocess
    import sys

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc's malloc only")
    script = """
import resource
import torch
from fol_core.training.trainer import reuse_freed_memory

def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        torch.ones(64 << 18)  # 64 MB, allocated, written and freed: like a batch's activations
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

outside = faults()
with reuse_freed_memory():
    for _ in range(3):
        faults()  # the first rounds map the memory (one to three blocks here, more on another machine)
    inside = faults()
print(outside, inside)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True,
                          cwd=Path(__file__).resolve().parent.parent)
    outside, inside = map(int, done.stdout.split())
    assert outside > 4 * 16384 and inside < outside / 4
