"""The dataset map: real photos through the real default model, t-SNE, the PNG and the CSV read back.

Kept fast with a small map (--size 300, --thumb 24) and 500 t-SNE iterations instead of 1000: the
first 250 are scikit-learn's early-exaggeration phase, which alone leaves the points unsorted.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from conftest import probabilities
from PIL import Image, ImageOps

from fol_core.cli import main
from fol_core.draw import hex_colour
from fol_core.labelmap import LabelMap, load_label_map
from fol_core.tsne import (
    LEGEND_COLOURS,
    NO_LABEL,
    NO_LABEL_COLOUR,
    DatasetMap,
    MapError,
    assign_labels,
    auto_size,
    build_map,
    embed,
    extract_features,
    find_images,
    image_at,
    label_colours,
    layout,
    render_map,
)
from fol_core.webapp.dataset_map import scatter_colours

DEV_PHOTOS = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "imagenet-val-dev" / "JPEGImages"
FAST = ["--size", "300", "--thumb", "24", "--max-iter", "500"]


def _variants(examples_dir: Path, out: Path, n: int) -> Path:
    """n real photos made from examples/ by crops and flips, in one subfolder per source photo."""
    made = 0
    sources = sorted(p for p in examples_dir.iterdir() if p.suffix in (".png", ".jpg"))
    while made < n:
        for src in sources:
            photo = Image.open(src).convert("RGB")
            w, h = photo.size
            k = made // len(sources)
            f = 0.6 + 0.05 * (k % 8)  # crop fraction
            x0, y0 = int((w - w * f) * (k % 3) / 2), int((h - h * f) * (k % 2))
            variant = photo.crop((x0, y0, x0 + int(w * f), y0 + int(h * f)))
            if k % 2:
                variant = ImageOps.mirror(variant)
            (out / src.stem).mkdir(parents=True, exist_ok=True)
            variant.save(out / src.stem / f"{k:02d}.jpg", quality=90)
            made += 1
            if made == n:
                break
    return out


@pytest.fixture(scope="module")
def photos30(examples_dir, tmp_path_factory) -> Path:
    return _variants(examples_dir, tmp_path_factory.mktemp("photos30"), 30)


@pytest.fixture(scope="module")
def map30(model, photos30):
    return build_map(find_images(photos30), model, max_iter=500, progress=False)


def _messages(err: str) -> list[str]:
    """stderr without the progress bar's lines."""
    return [line for line in err.splitlines() if line.strip() and not line.startswith("features:")]


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_thirty_photos_give_the_png_and_a_csv_of_thirty_rows(model, examples_dir, tmp_path, capsys):
    if DEV_PHOTOS.is_dir():
        folder, limit = DEV_PHOTOS, ["--limit", "30"]
    else:
        folder, limit = _variants(examples_dir, tmp_path / "photos", 30), []
    out = tmp_path / "map" / "dev.png"
    assert main(["tsne", str(folder), "--out", str(out), *limit, *FAST]) == 0
    assert "mapped 30 images" in capsys.readouterr().out
    with Image.open(out) as png:
        assert png.size == (300 + 300 // 3, 300)  # the plot and the legend column
        colours = np.unique(np.asarray(png.convert("RGB")).reshape(-1, 3), axis=0)
        assert len(colours) > 1000  # photos were pasted, not a blank canvas
    rows = _rows(out.with_suffix(".csv"))
    assert len(rows) == 30
    assert list(rows[0]) == ["path", "x", "y", "class_index", "label", "probability"]
    assert len({r["path"] for r in rows}) == 30
    assert all(Path(r["path"]).is_file() for r in rows)
    assert all(0 <= int(r["class_index"]) < 1000 and 0 < float(r["probability"]) <= 1 for r in rows)
    assert len({(r["x"], r["y"]) for r in rows}) == 30


def test_same_photos_same_coordinates(model, map30):
    """The seed is fixed: a second run (features and t-SNE) on the same photos puts every one at the same place."""
    assert map30.xy.shape == (30, 2) and np.isfinite(map30.xy).all()
    again = embed(extract_features(map30.paths, model, progress=False).features, max_iter=500)
    assert np.array_equal(again, map30.xy)
    assert len(np.unique(map30.xy.round(3), axis=0)) == 30


def test_photos_of_one_kind_sit_together(map30):
    """Crops of the same photo are near-duplicates: each one's nearest neighbour on the map is a sibling."""
    source = np.array([Path(p).parent.name for p in map30.paths])
    dist = np.linalg.norm(map30.xy[:, None] - map30.xy[None], axis=-1)
    np.fill_diagonal(dist, np.inf)
    same = source[dist.argmin(1)] == source
    assert same.mean() >= 0.9, list(zip(source, source[dist.argmin(1)]))


def test_user_labels_colour_the_map(model, examples_dir, tmp_path):
    labels = load_label_map({"cat": ["feline"], "hot drink": ["espresso", "cup", "coffee mug"]})
    probs = np.stack([probabilities(model, Image.open(examples_dir / n)).numpy() for n in ("chelsea.png", "coffee.png")])
    names, prob, colours = assign_labels(probs, labels)
    assert names == ["cat", "hot drink"]
    assert prob[0] > 0.9 and prob[1] > 0.9  # the sum over the label's classes, more than top-1 alone
    assert colours[0] != colours[1]
    rocket = probabilities(model, Image.open(examples_dir / "rocket.jpg")).numpy()[None]
    assert assign_labels(rocket, labels)[0] == [NO_LABEL]


def test_clicking_a_thumbnail_finds_its_image(map30):
    dmap, size, thumb = map30, 400, 32
    picture = render_map(dmap, size, thumb)
    assert picture.size == (400 + 400 // 3, 400)
    corners = layout(dmap.xy, size, thumb)
    last = len(dmap) - 1  # drawn last, so fully visible
    assert image_at(dmap, corners[last, 0] + thumb / 2, corners[last, 1] + thumb / 2, size, thumb) == last
    assert image_at(dmap, size + 50, 200, size, thumb) is None  # the legend


@pytest.mark.slow  # loads the model or starts a subprocess
def test_one_image_is_not_enough(examples_dir, tmp_path, capsys):
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "cat.png").write_bytes((examples_dir / "chelsea.png").read_bytes())
    assert main(["tsne", str(tmp_path / "one"), "--out", str(tmp_path / "map.png"), *FAST]) == 2
    assert _messages(capsys.readouterr().err) == ["error: t-SNE needs at least 3 readable images; found 1"]
    assert not (tmp_path / "map.png").exists()


@pytest.mark.slow  # loads the model
def test_out_may_be_a_folder_as_for_the_other_commands(examples_dir, tmp_path, capsys):
    """`--out exports/mine` used to run the whole map, then stop on Pillow's "unknown file extension"."""
    folder = _variants(examples_dir, tmp_path / "photos", 4)
    assert main(["tsne", str(folder), "--out", str(tmp_path / "mine"), *FAST]) == 0
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["map.csv", "map.png"]
    (tmp_path / "file").write_text("a file where the folder would go")
    capsys.readouterr()
    assert main(["tsne", str(folder), "--out", str(tmp_path / "file" / "map.png"), *FAST]) == 2
    assert _messages(capsys.readouterr().err)[0].startswith(f"error: {tmp_path / 'file'}")


@pytest.mark.slow  # loads the model or starts a subprocess
def test_unreadable_files_are_reported_and_skipped(examples_dir, tmp_path, capsys):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for p in sorted(examples_dir.iterdir()):
        if p.suffix in (".png", ".jpg"):
            (folder / p.name).write_bytes(p.read_bytes())
    (folder / "broken.jpg").write_text("not a photo")
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.txt").write_text("ignored: not an image file name")
    out = tmp_path / "map.png"
    assert main(["tsne", str(folder), "--out", str(out), *FAST]) == 1
    err = _messages(capsys.readouterr().err)
    assert len(err) == 3
    assert any("broken.jpg: not an image file Pillow can read" in line for line in err)
    assert any("empty.png: the file is empty" in line for line in err)
    assert not any("notes.txt" in line for line in err)
    assert "2 of 6 files could not be read" in err[-1]
    assert len(_rows(out.with_suffix(".csv"))) == 4


@pytest.mark.slow  # loads the model or starts a subprocess
def test_too_few_readable_files_and_empty_folders_say_so(examples_dir, tmp_path, capsys):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "cat.png").write_bytes((examples_dir / "chelsea.png").read_bytes())
    (folder / "broken.jpg").write_text("not a photo")
    assert main(["tsne", str(folder), "--out", str(tmp_path / "m.png"), *FAST]) == 2
    assert "found 1 (1 unreadable)" in capsys.readouterr().err
    (tmp_path / "none").mkdir()
    assert main(["tsne", str(tmp_path / "none"), "--out", str(tmp_path / "m.png"), *FAST]) == 2
    assert "no image files" in capsys.readouterr().err
    assert main(["tsne", str(tmp_path / "missing"), "--out", str(tmp_path / "m.png"), *FAST]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_map_tab_opens_a_clicked_image_in_the_review_queue(model, examples_dir, tmp_path):
    """The Dataset map tab's logic on a real pre-labeling project: 4 of 6 images pre-labeled."""
    from fol_core import webapp
    from fol_core.bootstrap.prelabel import prelabel_folder
    from fol_core.errors import UserError
    from fol_core.webapp import dataset_map, review

    photos = _variants(examples_dir, tmp_path / "photos", 6)
    project, _, _ = prelabel_folder(str(photos), tmp_path / "projects" / "demo", method="cam", limit=4, model=model)
    state = review.start(project.folder, "name", "all")  # a reviewer's decisions frame their images
    first, second = (project.image(i).file_name for i in state["ids"][:2])
    boxes = review.current(state).annotator["boxes"]
    review.decide(state, "accept", {"boxes": [{**boxes[0], "label": "kitty"}] if boxes else [
        {"xmin": 1, "ymin": 1, "xmax": 9, "ymax": 9, "label": "kitty"}]})
    review.decide(review.jump(state, second), "reject")
    workdir = webapp.workdir()
    try:
        view = dataset_map.make_map(dataset_map.SOURCES[1], None, tmp_path / "projects", "demo", model.name, 1000,
                                    workdir, progress=False)
        assert Image.open(view.picture).size[1] == auto_size(6) and "6 images" in view.summary
        assert "the review's label where decided" in view.summary
        dmap, folder = view.state["map"], view.state["project"]
        label = dict(zip(dmap.paths, dmap.labels))
        assert (label[first], label[second]) == ("kitty", dataset_map.REVIEW_REJECTED)
        assert dmap.labels.count("kitty") == dmap.labels.count(dataset_map.REVIEW_REJECTED) == 1  # the rest predicted
        assert sorted(dmap.paths) == sorted(r.file_name for r in review.get_project(folder).images())
        opened, waiting = 0, 0
        for i, name in enumerate(dmap.paths):
            photo, about = dataset_map.show_point(view.state, i)
            assert isinstance(photo, Image.Image) and name in about
            try:
                session = dataset_map.review_at(folder, name)
            except UserError as exc:
                waiting += 1
                assert "not in the review queue yet" in str(exc)
            else:
                opened += 1
                assert review.get_project(folder).image(session["ids"][session["pos"]]).file_name == name
        assert (opened, waiting) == (4, 2)
    finally:
        webapp.remove_workdir(workdir)


def test_the_legend_groups_have_distinct_colours_in_the_frames_legend_and_scatter():
    assert len(LEGEND_COLOURS) >= 10
    palette = np.array([*LEGEND_COLOURS, NO_LABEL_COLOUR], dtype=float)
    gaps = np.linalg.norm(palette[:, None] - palette[None], axis=-1)
    assert gaps[np.triu_indices(len(palette), 1)].min() >= 60  # no two look alike, nor like "other" grey
    labels = [f"class {i}" for i in range(15) for _ in range(20 - i)] + [NO_LABEL] * 30
    colour_of = label_colours(labels)
    assert colour_of[NO_LABEL] == NO_LABEL_COLOUR
    assert [colour_of[f"class {i}"] for i in range(len(LEGEND_COLOURS))] == list(LEGEND_COLOURS)  # most frequent first
    assert colour_of["class 14"] == NO_LABEL_COLOUR  # beyond the legend: grey
    n = len(labels)
    dmap = DatasetMap([f"{i}.jpg" for i in range(n)], np.random.default_rng(0).normal(size=(n, 2)),
                      np.zeros(n, int), labels, np.ones(n), [colour_of[lab] for lab in labels],
                      [Image.new("RGB", (8, 8))] * n, "m")
    legend = dmap.legend()
    assert legend[0] == (NO_LABEL, NO_LABEL_COLOUR, 30)
    assert [colour for _, colour, _ in legend[1:]] == list(LEGEND_COLOURS[:len(legend) - 1])
    scatter = scatter_colours(dmap)
    assert all(scatter[label] == hex_colour(colour) for label, colour, _ in legend)
    picture = np.asarray(render_map(dmap, 400, 16))
    assert picture.shape == (400, 400 + 400 // 3, 3)
    legend_pixels = {tuple(c) for c in picture[:, 400:].reshape(-1, 3)}
    assert set(LEGEND_COLOURS[:len(legend) - 1]) <= legend_pixels  # each group's swatch is drawn


def test_a_label_map_of_another_models_classes_is_refused_before_any_work(model, examples_dir):
    with pytest.raises(MapError, match="the label map names a trained model's classes, not those of efficientnet_lite0"):
        build_map([examples_dir / "chelsea.png"], model, LabelMap.for_classes(["raccoon"]))
