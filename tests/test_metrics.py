"""The evaluation's metric functions and VOC reading against cases worked out by hand."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from fol_core.evaluation.dataset import DatasetError, load_dataset, load_label_map, split_ids
from fol_core.evaluation.metrics import (
    CAM_THRESHOLDS,
    baseline_box,
    best_match,
    centre_correctness,
    centre_inside,
    fixed_box_accuracy,
    heatmap_boxes,
    hit_interval,
    iou_curve,
    iou_matrix,
    maxboxacc,
    maxboxacc_v2,
    paired_test,
    photo_kinds,
    summarize,
)
from fol_core.formats.voc import image_ids


def test_iou_of_pixel_edge_boxes():
    ious = iou_matrix([[0, 0, 10, 10]], [[5, 5, 15, 15], [0, 0, 10, 10], [10, 0, 20, 10], [0, 0, 10, 5]])
    # overlap 5x5 = 25 of 100 + 100 - 25; identical; touching edges only; the top half
    assert ious[0] == pytest.approx([25 / 175, 1.0, 0.0, 0.5])
    assert iou_matrix(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)


def test_best_match_takes_the_best_pair():
    iou, index = best_match([[50, 50, 60, 60], [0, 0, 10, 20]], [[100, 100, 120, 120], [0, 0, 10, 10]])
    assert (iou, index) == (pytest.approx(0.5), 1)
    assert best_match(np.zeros((0, 4)), [[0, 0, 10, 10]]) == (0.0, None)


def test_centre_correctness_margins():
    truth = np.array([[0.0, 0.0, 100.0, 100.0]])
    assert all(centre_inside((40, 40, 60, 60), truth, m) for m in (0.0, 0.25, 0.5))  # centre (50, 50)
    # centre (20, 50): inside the box shrunk by 20 px on each side (edges count), not by 25 px
    assert centre_inside((10, 40, 30, 60), truth, 0.2)
    assert not centre_inside((10, 40, 30, 60), truth, 0.25)
    # centre (0, 50) on the true box's edge: right at margin 0 only
    assert centre_inside((-10, 40, 10, 60), truth, 0.0)
    assert not centre_inside((-10, 40, 10, 60), truth, 0.05)
    # a second true box counts; a missing box is wrong
    two = np.array([[0.0, 0.0, 10.0, 10.0], [200.0, 0.0, 300.0, 100.0]])
    assert centre_inside((240, 40, 260, 60), two, 0.4)
    scores = centre_correctness([(40, 40, 60, 60), None], [truth, truth], margins=(0.0, 0.5))
    assert scores == {"0.0": 0.5, "0.5": 0.5}


def _two_blobs() -> np.ndarray:
    heat = np.zeros((20, 20), np.float32)
    heat[2:6, 2:6] = 1.0  # blob A: box (2, 2, 6, 6)
    heat[10:16, 12:18] = 0.5  # blob B: box (12, 10, 18, 16), 127 in 8 bits
    return heat


def test_heatmap_boxes_one_per_contour():
    heat = _two_blobs()
    both = heatmap_boxes(heat, 0.3)  # 8-bit threshold int(0.3 * 255) = 76: both blobs are above it
    assert sorted(map(tuple, both.tolist())) == [(2, 2, 6, 6), (12, 10, 18, 16)]
    assert heatmap_boxes(heat, 0.6).tolist() == [[2, 2, 6, 6]]  # 153: blob B (127) drops out
    assert heatmap_boxes(np.zeros((5, 5)), 0.5).shape == (0, 4)


def test_maxboxacc_v2_on_a_synthetic_heatmap():
    heat = _two_blobs()
    curve = iou_curve(heat, np.array([[12.0, 10.0, 18.0, 16.0]]))  # the truth is blob B
    # B is boxed exactly while 127 > int(t * 255), i.e. for t < 0.498; above, only A's box (IoU 0) remains
    expected = np.array([1.0 if t < 0.498 else 0.0 for t in CAM_THRESHOLDS])
    assert np.array_equal(curve, expected)
    assert maxboxacc_v2(curve[None]) == 1.0
    per_delta = maxboxacc(curve[None])
    assert per_delta["0.5"] == {"accuracy": 1.0, "threshold": 0.0}


def test_maxboxacc_takes_the_best_threshold_per_delta():
    curves = np.array([[0.8, 0.6, 0.2], [0.4, 0.55, 0.75]])
    thresholds = (0.1, 0.5, 0.9)
    per_delta = maxboxacc(curves, thresholds=thresholds)
    # delta 0.3: [1, 1, 0.5]; 0.5: [0.5, 1, 0.5]; 0.7: [0.5, 0, 0.5]
    assert per_delta == {
        "0.3": {"accuracy": 1.0, "threshold": 0.1},
        "0.5": {"accuracy": 1.0, "threshold": 0.5},
        "0.7": {"accuracy": 0.5, "threshold": 0.1},
    }
    assert maxboxacc_v2(curves, thresholds=thresholds) == pytest.approx(2.5 / 3)


def test_constant_baselines():
    assert baseline_box(227, 227, 1.0) == (0.0, 0.0, 227.0, 227.0)
    assert baseline_box(200, 100, 0.8) == pytest.approx((20.0, 10.0, 180.0, 90.0))
    # a true box of the central 80%: IoU 0.64 with the whole image, 1 with the centred box
    truth = np.array([[20.0, 10.0, 180.0, 90.0]])
    assert best_match([baseline_box(200, 100, 1.0)], truth)[0] == pytest.approx(0.64)
    assert best_match([baseline_box(200, 100, 0.8)], truth)[0] == pytest.approx(1.0)
    assert fixed_box_accuracy([0.2, 0.4, 0.6, 0.8]) == pytest.approx((0.75 + 0.5 + 0.25) / 3)


def test_summarize_counts_top1_and_median_time():
    truth = np.array([[0.0, 0.0, 10.0, 10.0]])
    s = summarize([0.6, 0.4, 0.9], [True, True, False], [(0, 0, 10, 10), (0, 0, 10, 10), None], [truth] * 3,
                  [1.0, 2.0, 10.0])
    assert s["gt_known_loc"] == pytest.approx(2 / 3)
    assert s["top1_loc"] == pytest.approx(1 / 3)
    assert s["mean_iou"] == pytest.approx(1.9 / 3)
    assert s["center_correct"]["0.0"] == pytest.approx(2 / 3)
    assert s["s_per_image"] == 2.0


def test_photo_kinds_by_count_and_largest_box():
    # 200 x 100 photo: a fifth of it is 4000 pixels; the largest box decides, not the first
    assert photo_kinds(np.array([[0.0, 0.0, 80.0, 50.0]]), 200, 100) == ("one object", "larger objects")
    assert photo_kinds(np.array([[0.0, 0.0, 50.0, 79.0]]), 200, 100) == ("one object", "small objects")
    two = np.array([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 100.0, 39.0]])
    assert photo_kinds(two, 200, 100) == ("several objects", "small objects")
    assert photo_kinds(two, 200, 50) == ("several objects", "larger objects")


VOC_XML = """<annotation><filename>{name}.jpg</filename>
<size><width>227</width><height>100</height><depth>3</depth></size>
{objects}</annotation>"""
OBJECT = ("<object><name>{label}</name>"
          "<bndbox><xmin>{0}</xmin><ymin>{1}</ymin><xmax>{2}</xmax><ymax>{3}</ymax></bndbox></object>")


def _voc(tmp_path, items: dict[str, list[tuple]]):
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "JPEGImages").mkdir()
    for name, objects in items.items():
        xml = "".join(OBJECT.format(*box, label=label) for label, *box in objects)
        (tmp_path / "Annotations" / f"{name}.xml").write_text(VOC_XML.format(name=name, objects=xml))
        (tmp_path / "JPEGImages" / f"{name}.jpg").write_bytes(b"")
    return tmp_path


def test_voc_boxes_become_zero_based_pixel_edges(tmp_path):
    root = _voc(tmp_path, {
        "a": [("n02123045", 1, 1, 10, 20), ("n02123045", 1, 1, 227, 100)],
        "b": [("n07920052", 5, 6, 5, 6), ("person", 1, 1, 2, 2)],
        "c": [("person", 1, 1, 2, 2)],
    })
    (root / "Annotations" / "d.xml").write_text("<annotation><filename>d.jpg")  # broken XML
    data = load_dataset(root)
    assert [(s.image_id, s.classes) for s in data.samples] == [("a", (281,)), ("b", (967,))]
    # xmin = 1 is the first pixel column: edge 0; xmax = 10 is the tenth column: edge 10, 10 px wide
    assert data.samples[0].boxes.tolist() == [[0, 0, 10, 20], [0, 0, 227, 100]]
    assert data.samples[1].boxes.tolist() == [[4, 5, 5, 6]]  # a one-pixel box is 1 wide
    assert best_match(data.samples[0].boxes, [baseline_box(227, 100, 1.0)])[0] == 1.0  # the full-image box
    assert data.n_images == 2
    assert any("d.xml" in p for p in data.problems)
    assert sum("'person'" in p for p in data.problems) == 1  # an unknown label is reported once


def test_label_map_groups_classes(tmp_path):
    path = tmp_path / "labels.yaml"
    path.write_text("cat: [tabby, tiger cat, 285]\ncup: n07930864\n")
    assert load_label_map(path) == {"cat": (281, 282, 285), "cup": (968,)}
    wrapped = tmp_path / "project.yaml"  # the bootstrap's layout: the map under "labels"
    wrapped.write_text("labels:\n  cat: [tabby, tiger cat, 285]\nthreshold: 0.1\n")
    assert load_label_map(wrapped) == {"cat": (281, 282, 285)}
    (tmp_path / "voc").mkdir()
    root = _voc(tmp_path / "voc", {"a": [("cat", 1, 1, 10, 10), ("dog", 1, 1, 5, 5)]})
    data = load_dataset(root, label_map=load_label_map(path))
    assert [(s.label, s.classes) for s in data.samples] == [("cat", (281, 282, 285))]
    assert any("'dog'" in p and "label map" in p for p in data.problems)
    path.write_text("dog: [dog]\n")  # a WordNet ancestor: every dog breed
    assert len(load_label_map(path)["dog"]) == 118
    path.write_text("cat: [tabby, no such animal]\n")
    with pytest.raises(DatasetError, match="no such animal"):
        load_label_map(path)


def test_fixed_split_even_and_odd_positions(tmp_path):
    ids = ["a", "b", "c", "d", "e"]
    assert split_ids(ids, "calib") == ["a", "c", "e"]
    assert split_ids(ids, "test") == ["b", "d"]
    assert split_ids(ids, "all") == ids
    root = _voc(tmp_path, {"x": [], "y": [], "z": []})
    assert image_ids(root) == ["x", "y", "z"]
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "mine.txt").write_text("z\ny  1\n\n")
    assert image_ids(root) == ["z", "y"]  # the only list, in its order, flags ignored


def test_dev_set_xml_agrees_with_its_float_boxes(dev_set):
    """The real dev set: boxes read from the 1-based XML are within half a pixel of boxes.csv's edges."""
    data = load_dataset(dev_set)
    assert len(data.samples) == 500 and not data.problems
    by_image = {s.path.name: s for s in data.samples}
    with (dev_set / "boxes.csv").open() as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        s = by_image[row["image"]]
        assert s.classes == (int(row["class_index"]),)
        exact = np.array([float(row[k]) for k in ("xmin", "ymin", "xmax", "ymax")])
        assert np.abs(s.boxes - exact).max(1).min() <= 0.5 + 1e-6


def test_hit_interval_is_wilsons():
    # Wilson's score interval by hand: centre (p + z^2/2n) / (1 + z^2/n), half-width
    # z / (1 + z^2/n) * sqrt(p (1 - p) / n + z^2 / 4n^2), z = 1.959964 for 95%
    z = 1.959964
    for hits, n in ((7, 10), (175, 250), (0, 20), (20, 20)):
        p = hits / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        assert hit_interval(hits, n) == pytest.approx((centre - half, centre + half), abs=1e-6)
    lo, hi = hit_interval(175, 250)
    assert 0.63 < lo < 0.7 < hi < 0.76  # 70% on 250 photos: about +-6 points
    assert hit_interval(0, 0) is None
    assert summarize([0.6, 0.4], [True, True], [None, None], [np.zeros((0, 4))] * 2)["gt_known_interval"] == \
        pytest.approx(hit_interval(1, 2))


def test_paired_test_counts_only_the_disagreements():
    a = [True, True, True, True, True, False, True]
    b = [False, False, False, False, False, False, True]
    t = paired_test(a, b)
    assert (t["only_a"], t["only_b"]) == (5, 0)
    assert t["p"] == pytest.approx(2 * 0.5**5)  # two-sided: 5 of 5 disagreements one way
    assert paired_test(b, a) == {"only_a": 0, "only_b": 5, "p": pytest.approx(2 * 0.5**5)}
    assert paired_test(a, a)["p"] == 1.0
    # 3 against 1 is no evidence: p = 2 x P(X <= 1), X ~ Binomial(4, 1/2) = 2 x 5/16
    assert paired_test([1, 1, 1, 0], [0, 0, 0, 1])["p"] == pytest.approx(10 / 16)
