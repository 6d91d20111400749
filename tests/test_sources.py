"""Image sources: folders (recursive, folder labels, links), CSV labels, saved datasets and imagefolders."""

from __future__ import annotations

import csv
import shutil

import datasets
import pytest
from PIL import Image

from fol_core import paths
from fol_core.bootstrap.sources import FolderSource, folder_labels, open_source, source_spec


def test_folder_source_is_recursive_with_folder_labels(tricky_folder):
    items = list(FolderSource(tricky_folder, "folders").items())
    assert [(i.key, i.label) for i in items] == [
        ("rocket.jpg", None), ("cat/photo.png", "cat"), ("cup/Photo.PNG", "cup"), ("cup/photo.png", "cup"),
        ("hog/my cat ü.png", "hog"),
    ]


def test_the_class_is_the_first_folder_below_any_wrapping_folder():
    assert folder_labels(["cells/p1/a.png", "cells/p2/deep/b.png", "background/x/c.png", "d.png"]) == {
        "cells/p1/a.png": "cells", "cells/p2/deep/b.png": "cells", "background/x/c.png": "background"}
    assert folder_labels(["data/cat/a.jpg", "data/dog/2024/b.jpg"]) == {  # a zip of the folder itself
        "data/cat/a.jpg": "cat", "data/dog/2024/b.jpg": "dog"}
    assert folder_labels(["raccoon/a.jpg", "raccoon/b.jpg"]) == {"raccoon/a.jpg": "raccoon", "raccoon/b.jpg": "raccoon"}
    assert folder_labels(["a.jpg"]) == {} and folder_labels([]) == {}


def test_csv_labels_match_by_path_or_unique_file_name(tricky_folder, tmp_path):
    table = tmp_path / "labels.csv"
    with table.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "label"])
        w.writerows([["rocket.jpg", "missile"], ["cup/photo.png", "cup"], ["photo.png", "ambiguous"]])
    labels = {i.key: i.label for i in FolderSource(tricky_folder, str(table)).items()}
    assert labels["rocket.jpg"] == "missile" and labels["cup/photo.png"] == "cup"
    assert labels["cat/photo.png"] is None  # "photo.png" names two files: not guessed


def test_saved_dataset_and_imagefolder_sources(tmp_path, examples_dir):
    feats = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["cat", "cup"])})
    ds = datasets.Dataset.from_dict(
        {"image": [str(examples_dir / "chelsea.png"), str(examples_dir / "coffee.png")], "label": [0, 1]}, features=feats)
    ds.save_to_disk(str(tmp_path / "saved"))
    src = open_source(source_spec(str(tmp_path / "saved"), image_labels="folders"))
    items = list(src.items())
    assert [(i.key, i.name, i.label) for i in items] == [("train/0", "train/chelsea.png", "cat"), ("train/1", "train/coffee.png", "cup")]
    assert src.open("train/1").size == Image.open(examples_dir / "coffee.png").size
    folder = tmp_path / "imgs"
    for label, name in (("cat", "chelsea.png"), ("cup", "coffee.png")):
        (folder / label).mkdir(parents=True)
        shutil.copy(examples_dir / name, folder / label / name)
    spec = source_spec(f"hf:{folder}", image_labels="label")
    assert spec["mode"] == "imagefolder"
    src = open_source(spec, tmp_path / "project")
    assert sorted(i.label for i in src.items()) == ["cat", "cup"]
    assert (tmp_path / "project" / ".cache").is_dir()  # the Arrow cache stays in the project's folder
    assert src.notes == []

    # ImageNet's own file names hold "_val_": datasets then reads only those, as a validation split, unlabelled
    shutil.copy(examples_dir / "rocket.jpg", folder / "cup" / "ILSVRC2012_val_00000001.JPEG")
    src = open_source(source_spec(f"hf:{folder}", image_labels="folders"), tmp_path / "project2")
    assert [i.key for i in src.items()] == ["validation/0"]
    assert any("read 1 of its 3 images" in n and "without hf:" in n for n in src.notes)
    assert any("has no label column" in n for n in src.notes)


def test_folder_source_reads_links_inside_and_refuses_keys_that_climb_out(tmp_path, examples_dir):
    (tmp_path / "cat.png").symlink_to(examples_dir / "chelsea.png")
    source = FolderSource(tmp_path)
    assert [item.key for item in source.items()] == ["cat.png"]
    assert source.read_bytes("cat.png") == (examples_dir / "chelsea.png").read_bytes()
    for key in ("../secret.png", "/etc/passwd"):
        with pytest.raises(paths.UnsafePathError):
            source.read_bytes(key)


def test_parquet_of_image_bytes_is_a_source(tmp_path, examples_dir):
    """A Parquet file written elsewhere (a binary column of encoded images, a label column) reads like a dataset."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = ["chelsea.png", "rocket.jpg"]
    table = pa.table({
        "name": names,
        "data": pa.array([(examples_dir / n).read_bytes() for n in names], pa.binary()),
        "label": ["cat", "rocket"],
    })
    pq.write_table(table, tmp_path / "photos.parquet")
    spec = source_spec(str(tmp_path / "photos.parquet"), image_labels="label")
    assert spec["mode"] == "parquet"
    work = tmp_path / "project"
    work.mkdir()
    src = open_source(spec, work)
    items = list(src.items())
    assert [(i.key, i.label) for i in items] == [("train/0", "cat"), ("train/1", "rocket")]
    assert src.read_bytes("train/1") == (examples_dir / "rocket.jpg").read_bytes()
    assert src.open("train/0").size == Image.open(examples_dir / "chelsea.png").size
    assert (work / ".cache").is_dir()  # the Arrow cache stays in the project's folder
