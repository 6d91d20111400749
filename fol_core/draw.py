"""Drawing: labelled boxes on the full-size photo, heatmap overlays, and the paper's Figure 3 panel."""

from __future__ import annotations

import colorsys
import functools
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .images import as_rgb
from .result import Box, Explanation, Localization


def class_colour(class_index: int) -> tuple[int, int, int]:
    """A stable, saturated colour per class (golden-ratio hues)."""
    r, g, b = colorsys.hsv_to_rgb((class_index * 0.618034) % 1.0, 0.85, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def hex_colour(rgb: tuple[int, int, int]) -> str:
    """#rrggbb, as the browser's components take colours."""
    return "#{:02x}{:02x}{:02x}".format(*rgb)


@functools.cache
def font(size: int) -> ImageFont.ImageFont:
    """DejaVu Sans (shipped with matplotlib): labels in any Latin, Greek or Cyrillic script (Pillow's own font
    draws "dögs" as "d□gs")."""
    import matplotlib

    try:
        return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"), size)
    except (OSError, ImportError):  # the font gone, or Pillow without FreeType
        return ImageFont.load_default()


def fit_text(draw: ImageDraw.ImageDraw, text: str, face: ImageFont.ImageFont, width: float) -> str:
    """The text, cut with an ellipsis until it is at most `width` pixels long."""
    while text and draw.textlength(text, font=face) > width:
        text = text[:-2] + "…" if len(text) > 2 else ""
    return text


def wrap_text(draw: ImageDraw.ImageDraw, text: str, face: ImageFont.ImageFont, width: float) -> list[str]:
    """The text's words in lines of at most `width` pixels (a word longer than that is cut, fit_text)."""
    lines: list[str] = []
    for word in text.split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font=face) <= width:
            lines[-1] += f" {word}"
        else:
            lines.append(fit_text(draw, word, face, width))
    return lines


LABEL_MIN_PX = 14
"""The smallest label text, in pixels of the image drawn on: readable where the browser shows it at about its size."""


def label_size(side: int, short: int | None = None) -> int:
    """Label text height for an image whose longest side is `side`: about 1/24 of it, so that the display copy
    (640 to 1600 pixels, which the app shows 400 pixels high, or a phone's width) gets labels of ~14 screen pixels;
    at most a quarter of the `short` side, so that labels never cover a thin strip (2400 x 80 px: 20, not 100)."""
    return max(LABEL_MIN_PX, round(min(side / 24, (short or side) / 4)))


def label_origin(box: Box, text_w: float, text_h: float, width: int, height: int,
                 taken: Sequence[tuple[float, float, float, float]] = ()) -> tuple[float, float]:
    """Where a box's label (text_w x text_h, background included) goes: on the box's top edge, outside it,
    or just inside when there is no room above; moved left or right so that it stays in the picture. Where
    that covers a label already placed (`taken`: x0, y0, x1, y1), it moves down one label height at a time
    inside the box, then under the box, then along its row past the labels it covers, so that neighbouring
    boxes (two from one corner, small ones side by side with labels wider than they are) keep every label
    readable; where no place is free, it keeps the first."""
    ty = box.y0 - text_h if box.y0 - text_h >= 0 else max(0.0, box.y0)
    tx = max(0.0, min(max(0.0, box.x0), width - text_w))
    ty = min(ty, max(0.0, height - text_h))

    def covered(x: float, y: float) -> list[tuple[float, float, float, float]]:
        return [t for t in taken if x < t[2] and t[0] < x + text_w and y < t[3] and t[1] < y + text_h]

    def inside(x: float, y: float) -> bool:
        return 0 <= x and x + text_w <= width and 0 <= y and y + text_h <= height

    lower = [(tx, ty + k * text_h) for k in range(1, int((min(box.y1, height) - ty) // text_h))]
    aside = sorted(((x, ty) for t in covered(tx, ty) for x in (t[2], t[0] - text_w)), key=lambda c: abs(c[0] - tx))
    candidates = [(tx, ty), *lower, (tx, float(box.y1)), *aside]
    return next((c for c in candidates if inside(*c) and not covered(*c)), (tx, ty))


def draw_boxes(image: Image.Image, boxes: Sequence[Box], scores: bool = True) -> Image.Image:
    """The photo with each box outlined and labelled; line width and text scale with the photo, and every
    label stays inside the picture (label_origin). The best box's label is placed first, so it keeps its place
    where labels would overlap; labels are drawn over every outline, the best last."""
    out = image.convert("RGB")  # a copy, even of an RGB image
    draw = ImageDraw.Draw(out)
    side = max(out.size)
    width = max(2, side // 250)
    face = font(label_size(side, min(out.size)))
    order = sorted(range(len(boxes)), key=lambda i: boxes[i].score)
    labels: dict[int, tuple[str, tuple[float, float, float, float]]] = {}
    placed: list[tuple[float, float, float, float]] = []
    for i in reversed(order):
        b = boxes[i]
        text = f"{b.label} {b.score:.2f}" if scores else b.label
        _, _, right, bottom = draw.textbbox((0, 0), text, font=face)
        w, h = right + 2 * width, bottom + 2 * width
        tx, ty = label_origin(b, w, h, out.width, out.height, placed)
        placed.append((tx, ty, tx + w, ty + h))
        labels[i] = text, placed[-1]
    for b in (boxes[i] for i in order):
        # a box under 1 pixel wide (a thin strip's display copy) is drawn as a line, never inverted
        draw.rectangle([b.x0, b.y0, max(b.x0, b.x1 - 1), max(b.y0, b.y1 - 1)], outline=class_colour(b.class_index),
                       width=width)
    for i in order:  # labels over every outline
        text, (tx, ty, x1, y1) = labels[i]
        draw.rectangle([tx, ty, x1, y1], fill=class_colour(boxes[i].class_index))
        draw.text((tx + width, ty + width), text, fill=(0, 0, 0), font=face)
    return out


def scale_boxes(boxes: Sequence[Box], sx: float, sy: float) -> list[Box]:
    """The boxes with x multiplied by sx and y by sy (photo <-> display or tile pixels)."""
    return [replace(b, x0=b.x0 * sx, y0=b.y0 * sy, x1=b.x1 * sx, y1=b.y1 * sy) for b in boxes]


def stack(images: Sequence[Image.Image], vertical: bool = False, gap: int = 4) -> Image.Image:
    """Images side by side (or one under another) on white, `gap` pixels apart."""
    along = [im.height if vertical else im.width for im in images]
    across = max(im.width if vertical else im.height for im in images)
    length = sum(along) + gap * (len(images) - 1)
    out = Image.new("RGB", (across, length) if vertical else (length, across), (255, 255, 255))
    offset = 0
    for im, n in zip(images, along):
        out.paste(im, (0, offset) if vertical else (offset, 0))
        offset += n + gap
    return out


def colorize(heatmap: np.ndarray, colormap: int = cv2.COLORMAP_INFERNO) -> np.ndarray:
    """A [0, 1] map as an RGB image in a perceptual colormap."""
    u8 = np.clip(heatmap * 255, 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(u8, colormap), cv2.COLOR_BGR2RGB)


def heatmap_overlay(image: Image.Image, heatmap: np.ndarray, alpha: float = 0.5) -> Image.Image:
    """The heatmap coloured at its own size, resized to the photo and blended over it in 8 bits (OpenCV): a
    24 MP photo in about 0.3 s, where colouring and blending it in floats at full size took 12."""
    rgb = np.asarray(as_rgb(image))
    colour = cv2.resize(colorize(heatmap), (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
    return Image.fromarray(cv2.addWeighted(rgb, 1 - alpha, colour, alpha, 0))


def _normalized(saliency: np.ndarray) -> np.ndarray:
    peak = float(np.percentile(saliency, 99.5)) or 1.0
    return np.clip(saliency / peak, 0, 1)


CAPTION_PX = 16
"""Figure 3 tiles' caption text height (tiles are about 160 pixels, shown at about their size)."""


def tile_size(width: int, height: int, size: int) -> tuple[int, int]:
    """A Figure 3 tile at the photo's own shape, so a wide photo is not squeezed into a square: about the area
    of a `size` square, each side at most twice `size` (a 4:1 strip fits exactly), at least half of it, and
    wide enough for a caption ("neuron 1: p=0.93"), so a tall photo is a little less tall than it is."""
    aspect = width / max(height, 1)
    w = min(max(round(size * aspect ** 0.5), round(0.8 * size)), 2 * size)
    h = min(max(round(size / aspect ** 0.5), size // 2), 2 * size)
    return w, h


def _tile(arr: np.ndarray | Image.Image, shape: tuple[int, int], caption: str) -> Image.Image:
    img = arr if isinstance(arr, Image.Image) else Image.fromarray(arr)
    strip = CAPTION_PX + 6
    w, h = shape
    tile = Image.new("RGB", (w, h + strip), (255, 255, 255))
    tile.paste(img.convert("RGB").resize((w, h)), (0, strip))
    draw, face = ImageDraw.Draw(tile), font(CAPTION_PX)
    draw.text((2, 2), fit_text(draw, caption, face, w - 4), fill=(0, 0, 0), font=face)
    return tile


def explanation_panel(image: Image.Image, expl: Explanation, boxes: Sequence[Box], size: int = 160) -> Image.Image:
    """The paper's Figure 3 for one class: input, each chosen neuron's map, their union, the box; every tile at
    the photo's shape (`tile_size`), whatever shape the network saw.

    For heatmap methods: input, heatmap, overlay, box."""
    shape = tile_size(*image.size, size)
    small = image.convert("RGB").resize(shape)
    tiles = [_tile(small, shape, "input")]
    if expl.neuron_maps:
        for rank, i in enumerate(expl.chosen):
            tiles.append(_tile(colorize(_normalized(expl.neuron_maps[i]), cv2.COLORMAP_VIRIDIS), shape,
                               f"neuron {rank + 1}: p={expl.blob_scores[i]:.2f}"))
    elif expl.heatmap is not None:
        tiles.append(_tile(colorize(expl.heatmap), shape, "heatmap"))
    if expl.mask is not None:
        union = (expl.mask[..., None] * np.asarray(small.resize(expl.mask.shape[::-1]))).astype(np.uint8)
        tiles.append(_tile(union, shape, "union of blobs" if expl.neuron_maps else "region"))
    mine = scale_boxes([b for b in boxes if b.class_index == expl.class_index], shape[0] / image.width,
                       shape[1] / image.height)
    tiles.append(_tile(draw_boxes(small, mine, scores=False), shape, f"box: {expl.label}"))
    return stack(tiles)


def explain_figure(image: Image.Image, result: Localization, size: int = 160) -> Image.Image:
    """One panel row per explained class, stacked."""
    rows = [explanation_panel(image, e, result.boxes, size) for e in result.explanations]
    if not rows:
        return _tile(image, tile_size(*image.size, size), "nothing found")
    return stack(rows, vertical=True)


def heatmap_figure(image: Image.Image, result: Localization, side: int = 640) -> Image.Image:
    """Grad-CAM/CAM: each class's heatmap over the photo (longest side `side`) with its boxes, side by side."""
    scale = side / max(image.size)
    small = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                         Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC)
    sx, sy = small.width / result.width, small.height / result.height
    panels = []
    for e in result.explanations:
        panel = draw_boxes(heatmap_overlay(small, e.heatmap), scale_boxes(
            [b for b in result.boxes if b.class_index == e.class_index], sx, sy))
        draw, face = ImageDraw.Draw(panel), font(label_size(side, min(panel.size)))
        caption = fit_text(draw, f"{e.label}: p={e.probability:.2f}", face, panel.width - 8)
        _, _, w, h = draw.textbbox((0, 0), caption, font=face)
        draw.rectangle([0, panel.height - h - 8, w + 8, panel.height], fill=(0, 0, 0))
        draw.text((4, panel.height - h - 4), caption, fill=(255, 255, 255), font=face)
        panels.append(panel)
    return stack(panels, gap=8)


def overlay(image: Image.Image, result: Localization) -> Image.Image:
    """What the CLI saves: the heatmaps (Grad-CAM/CAM/mscam) or unions of blobs (FOL) of every class explained,
    their pixelwise maximum faintly behind the boxes, so that each class's object is lit (all of one photo's
    maps come from one forward pass, at one size)."""
    maps, alpha = [e.heatmap for e in result.explanations if e.heatmap is not None], 0.4
    if not maps:
        maps, alpha = [_normalized(np.max([e.neuron_maps[i] for i in e.chosen], axis=0))
                       for e in result.explanations if e.neuron_maps and e.chosen], 0.45
    return draw_boxes(heatmap_overlay(image, np.max(maps, axis=0), alpha) if maps else image, result.boxes)
