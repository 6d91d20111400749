"""`python -m fol_core localize` as a user runs it: overlays, JSON, one-line reasons, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image

from fol_core.cli import main

ROOT_KEYS = {"image", "width", "height", "model", "boxes", "seconds"}
BOX_KEYS = {"x0", "y0", "x1", "y1", "label", "class_index", "score", "method"}


def test_localize_writes_overlay_and_json_and_reports_bad_files(examples_dir, tmp_path, capsys, model):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    code = main(["localize", str(examples_dir / "chelsea.png"), str(bad), str(examples_dir / "coffee.png"),
                 "--method", "gradcam", "--out", str(out), "--topn", "2"])
    assert code == 1
    err = capsys.readouterr().err
    assert "skipped" in err and "broken.jpg" in err and "not an image" in err
    for stem, size in (("chelsea", (451, 300)), ("coffee", (600, 400))):
        data = json.loads((out / f"{stem}.json").read_text())
        assert ROOT_KEYS <= set(data) and (data["width"], data["height"]) == size
        assert data["boxes"] and all(set(b) == BOX_KEYS for b in data["boxes"])
        assert Image.open(out / f"{stem}.overlay.png").size == size
    assert not (out / "broken.json").exists()


def test_localize_named_classes_and_fol_explanation(examples_dir, tmp_path, model):
    code = main(["localize", str(examples_dir / "rocket.jpg"), "--classes", "missile", "--out", str(tmp_path),
                 "--explain"])
    assert code == 0
    data = json.loads((tmp_path / "rocket.json").read_text())
    assert {b["label"] for b in data["boxes"]} == {"missile"}
    assert (tmp_path / "rocket.explain.png").is_file()


def test_unknown_class_and_missing_weights_are_one_line_errors(examples_dir, tmp_path, model, capsys):
    code = main(["localize", str(examples_dir / "chelsea.png"), "--classes", "unicorn", "--out", str(tmp_path)])
    assert code == 2 and capsys.readouterr().err == "error: no ImageNet class is called 'unicorn'\n"
    assert main(["localize", str(examples_dir / "chelsea.png"), "--method", "fol", "--k", "30"]) == 2
    assert "k must be between 1 and 20" in capsys.readouterr().err
    proc = subprocess.run(
        [sys.executable, "-m", "fol_core", "localize", str(examples_dir / "chelsea.png"), "--model", "vgg16",
         "--out", str(tmp_path)],
        check=False, capture_output=True, text=True, env={"TORCH_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}, timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "vgg16 weights not found offline" in proc.stderr


def test_localize_takes_a_folder_and_leaves_its_own_output_alone(examples_dir, tmp_path, capsys, model):
    """Every image under a folder (not its README); run twice with the output inside it, the second run
    localizes the same two photos, not the first run's overlays; an empty folder is one line."""
    photos = tmp_path / "photos"
    (photos / "more").mkdir(parents=True)
    Image.open(examples_dir / "chelsea.png").save(photos / "chelsea.png")
    Image.open(examples_dir / "coffee.png").save(photos / "more" / "coffee.jpg")
    (photos / "README.md").write_text("not a photo")
    (tmp_path / "empty").mkdir()
    for _ in range(2):
        assert main(["localize", str(photos), "--method", "gradcam", "--out", str(photos / "out")]) == 0
        assert sorted(p.name for p in (photos / "out").iterdir()) == [
            "chelsea.json", "chelsea.overlay.png", "coffee.json", "coffee.overlay.png"]
    capsys.readouterr()
    assert main(["localize", str(tmp_path / "empty"), "--out", str(tmp_path / "out2")]) == 1
    assert "empty: a folder with no image files" in capsys.readouterr().err


def test_bench_says_in_one_line_when_there_is_nothing_to_time(tmp_path, capsys):
    """It used to stop on an IndexError after loading the model."""
    assert main(["bench", "--images", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'missing'}: no such folder\n"
    (tmp_path / "notes.txt").write_text("not a photo")
    assert main(["bench", "--images", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path}: no image files\n"


def test_no_command_lists_the_commands(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "COMMAND -h" in err and all(name in err for name in ("localize", "prelabel", "export", "train"))


@pytest.mark.parametrize("argv, says", [
    (["localize", "x.jpg", "--topn", "0"], "argument --topn: at least 1, got 0"),
    (["localize", "x.jpg", "--threads", "-1"], "argument --threads: at least 1, got -1"),
    (["prelabel", "x", "--limit", "many"], "argument --limit: a whole number is needed, got 'many'"),
    (["tsne", "x", "--thumb", "0"], "argument --thumb: at least 8, got 0"),
    (["train", "x", "--out", "m", "--epochs", "0"], "argument --epochs: at least 1, got 0"),
    (["train", "x", "--out", "m", "--refine", "11"], "argument --refine: from 1 to 10, got 11"),
    (["train", "x", "--out", "m", "--lr", "nan"], "argument --lr: above 0, got nan"),
    (["prelabel", "x", "--min-score", "2"], "argument --min-score: at least 0 and at most 1, got 2"),
])
def test_numbers_out_of_range_are_refused_before_any_work(argv, says, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2 and capsys.readouterr().err.strip().endswith(says)
