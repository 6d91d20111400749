"""fol_core.draw: labels stay readable and inside the picture, wherever the box is."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from fol_core.draw import (
    class_colour,
    colorize,
    draw_boxes,
    font,
    heatmap_overlay,
    label_origin,
    label_size,
    overlay,
    tile_size,
    wrap_text,
)
from fol_core.result import Box, Explanation, Localization


def _box(x0: float, y0: float, x1: float, y1: float) -> Box:
    return Box(x0, y0, x1, y1, "tabby", 281, 0.5, "fol")


def test_a_label_sits_above_its_box_inside_at_the_top_edge_and_is_moved_in_at_the_sides():
    assert label_origin(_box(50, 100, 250, 200), 80, 20, 400, 300) == (50, 80)  # room above: outside
    assert label_origin(_box(50, 0, 250, 200), 80, 20, 400, 300) == (50, 0)  # top edge: inside the box
    assert label_origin(_box(50, 10, 250, 200), 80, 20, 400, 300) == (50, 10)  # not cut to 10 px either
    assert label_origin(_box(380, 100, 400, 200), 80, 20, 400, 300) == (320, 80)  # right edge: moved left
    assert label_origin(_box(-30, 100, 60, 200), 80, 20, 400, 300) == (0, 80)  # left edge
    assert label_origin(_box(0, 290, 10, 300), 80, 20, 400, 300) == (0, 270)  # bottom-left corner
    assert label_origin(_box(0, 0, 1, 1), 500, 20, 400, 300) == (0, 0)  # wider than the picture: from its left


def _label_band(drawn: np.ndarray, rows: slice, cols: slice) -> tuple[float, int]:
    """The share of pixels in the label's colour and the number of dark (text) pixels in a region."""
    region = drawn[rows, cols].astype(int)
    fill = np.all(region == class_colour(281), axis=-1).mean()
    return fill, int((region.sum(-1) < 150).sum())


def test_labels_never_cover_a_thin_strip():
    strip = Image.new("RGB", (2400, 80), (255, 255, 255))
    assert label_size(2400, 80) == 20  # about 1/24 of the long side would be 100: more than the strip
    drawn = np.asarray(draw_boxes(strip, [_box(0, 0, 800, 80), _box(800, 0, 1600, 80), _box(1600, 0, 2400, 80)]))
    assert (drawn[50:70, 100:700] == 255).all()  # the photo shows below the labels


@pytest.mark.parametrize("side", [640, 1600])
def test_labels_are_drawn_inside_a_box_touching_the_top_and_scale_with_the_photo(side):
    photo = Image.new("RGB", (side, side * 3 // 4), (255, 255, 255))
    h = label_size(side)
    assert h >= 14 and h >= side // 30
    top = _box(side * 0.1, 0, side * 0.6, side * 0.5)
    drawn = np.asarray(draw_boxes(photo, [top]))
    x = int(top.x0)
    fill, text = _label_band(drawn, slice(0, h), slice(x, x + 3 * h))
    assert fill > 0.3 and text > 10  # the label's background and its text, inside the box
    lower = _box(side * 0.1, side * 0.3, side * 0.6, side * 0.6)
    drawn = np.asarray(draw_boxes(photo, [lower]))
    y = int(lower.y0)
    fill, text = _label_band(drawn, slice(y - h, y), slice(x, x + 3 * h))
    assert fill > 0.3 and text > 10  # room above: the label sits on the box, outside it
    assert _label_band(drawn, slice(y + h // 2, y + h), slice(x + h, x + 3 * h)) == (0.0, 0)  # box left clear
    right = _box(side - 10, side * 0.3, side, side * 0.6)
    drawn = np.asarray(draw_boxes(photo, [right]))
    fill, text = _label_band(drawn, slice(y - h, y), slice(side - 3 * h, side - 10))
    assert fill > 0.3 and text > 10  # pulled in from the right edge, whole


def test_figure_tiles_keep_the_photo_shape() -> None:
    """Wide photos were squeezed into square tiles; a tile now keeps the photo's shape, within bounds."""
    assert tile_size(500, 500, 160) == (160, 160)
    assert tile_size(640, 320, 160) == (226, 113)
    assert tile_size(2000, 500, 160) == (320, 80)  # 4:1 exactly
    assert tile_size(3000, 20, 160) == (320, 80)  # a thinner strip is squeezed to 4:1
    w, h = tile_size(320, 640, 160)
    assert (w, h) == (128, 226)  # a tall photo: wide enough for a caption


def test_two_boxes_from_the_same_corner_keep_both_labels_readable():
    """Two boxes starting at one corner used to draw one label over the other."""
    taken = [(50.0, 80.0, 130.0, 100.0)]
    assert label_origin(_box(50, 100, 250, 200), 80, 20, 400, 300, taken) == (50, 100)  # one label lower
    assert label_origin(_box(50, 100, 250, 115), 80, 20, 400, 300, taken) == (50, 115)  # no room: under it
    assert label_origin(_box(50, 100, 250, 115), 80, 20, 400, 120, taken) == (130, 80)  # at the bottom: aside
    assert label_origin(_box(50, 100, 250, 115), 80, 20, 150, 120, taken) == (50, 80)  # nowhere free: kept
    photo = Image.new("RGB", (640, 480), (255, 255, 255))
    big = _box(64, 96, 576, 448)
    small = Box(64, 96, 320, 300, "cup", 968, 0.9, "fol")
    drawn = np.asarray(draw_boxes(photo, [big, small]))
    h = label_size(640)
    colours = {class_colour(281), class_colour(968)}
    band = {tuple(c) for c in drawn[96 - h:96, 70:90].reshape(-1, 3)} & colours
    below = {tuple(c) for c in drawn[96 + 2:96 + h - 2, 70:90].reshape(-1, 3)} & colours
    assert band == {class_colour(968)} and below == {class_colour(281)}  # the best box's label keeps its place


def test_small_boxes_side_by_side_keep_labels_wider_than_themselves_apart():
    """A row of small boxes (a herd far away) whose labels are wider than the boxes: every label is drawn
    whole, none over another."""
    boxes = [Box(100 + 60 * i, 300, 150 + 60 * i, 340, "bighorn", 349, 0.9 - 0.1 * i, "mscam") for i in range(4)]
    h = label_size(800)
    placed: list[tuple[float, float, float, float]] = []
    for b in boxes:
        x, y = label_origin(b, 4 * h, h, 800, 600, placed)
        placed.append((x, y, x + 4 * h, y + h))
    assert not any(a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
                   for i, a in enumerate(placed) for b in placed[i + 1:])
    assert all(0 <= x0 and x1 <= 800 and 0 <= y0 and y1 <= 600 for x0, y0, x1, y1 in placed)


def test_the_heatmap_is_blended_over_the_photo_at_the_photo_size():
    """A 4 x 2 map over a 40 x 20 photo: alpha 0 is the photo, 1 the colour map, 0.4 their rounded mix."""
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 256, (20, 40, 3), dtype=np.uint8))
    heat = np.zeros((2, 4), np.float32)  # constant: resizing cannot move it
    colour = colorize(np.zeros((20, 40), np.float32)).astype(float)
    assert np.array_equal(np.asarray(heatmap_overlay(photo, heat, alpha=0.0)), np.asarray(photo))
    assert np.array_equal(np.asarray(heatmap_overlay(photo, heat, alpha=1.0)), colour)
    mixed = np.asarray(heatmap_overlay(photo, heat, alpha=0.4)).astype(float)
    assert mixed.shape == (20, 40, 3)
    assert np.abs(mixed - (0.6 * np.asarray(photo) + 0.4 * colour)).max() <= 1


@pytest.mark.parametrize("fol", [False, True])
def test_the_overlay_lights_every_class_explained(fol):
    """Two classes, one in each half of a grey photo: the saved overlay used to show the first class's map
    only, the other half as dark as the background."""
    photo = Image.new("RGB", (80, 40), (128, 128, 128))
    left, right = np.zeros((20, 40), np.float32), np.zeros((20, 40), np.float32)
    left[:, :20], right[:, 20:] = 1.0, 1.0
    expls = [Explanation(281, "tabby", 0.5, neuron_maps=[m], chosen=[0]) if fol else
             Explanation(281, "tabby", 0.5, heatmap=m) for m in (left, right)]
    drawn = np.asarray(overlay(photo, Localization(80, 40, "m", "x", [], [], expls))).astype(int)
    cold = np.asarray(heatmap_overlay(photo, np.zeros((20, 40), np.float32), alpha=0.4 if not fol else 0.45))
    lit = np.abs(drawn - cold.astype(int)).sum(-1)
    assert lit[:, 5:35].min() > 30 and lit[:, 45:75].min() > 30  # both halves, not only the first class's


def test_wrap_text_keeps_every_word_within_the_width():
    draw, face = ImageDraw.Draw(Image.new("RGB", (10, 10))), font(14)
    text = "frame = the review's label where decided, else the predicted user label"
    lines = wrap_text(draw, text, face, 180)
    assert len(lines) > 1 and " ".join(lines) == text
    assert all(draw.textlength(line, font=face) <= 180 for line in lines)
