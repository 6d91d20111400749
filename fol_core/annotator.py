"""Boxes to and from gradio_image_annotation's dicts, on a display copy of the photo.

The component is given a display copy of at most DISPLAY_MAX pixels wide (it misplaces boxes on
images larger than its canvas, edgarGracia/gradio_image_annotator#33, and a 100 MP photo should never
travel to the browser) and DISPLAY_MAX_HEIGHT high (it fits a photo to its width only, so a tall one
would run past the window, its lower corners out of reach); small photos are enlarged to DISPLAY_MIN so
their boxes are easy to grab.
Its boxes are scaled back to the photo's own pixels here, and a box the user left untouched keeps
its exact coordinates and score. Colours go as "rgb(r, g, b)" strings: with tuples the component
fails to parse them when the user clicks before the canvas has redrawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from PIL import Image

from .draw import class_colour
from .imagenet import UnknownClassError, resolve_class
from .result import Box

DISPLAY_MAX = 1600
"""The widest copy shown in the annotator."""
DISPLAY_MAX_HEIGHT = 800
"""The highest copy shown in the annotator: the whole photo fits a laptop's window."""
DISPLAY_MIN = 640
"""Smaller photos are shown enlarged to this longest side."""


def display_scale(width: int, height: int) -> float:
    """Photo pixels per display pixel (the same both ways, so the aspect is kept)."""
    shrink = max(width / DISPLAY_MAX, height / DISPLAY_MAX_HEIGHT)
    if shrink > 1:
        return shrink
    longest = max(width, height)
    if 0 < longest < DISPLAY_MIN:
        return longest / DISPLAY_MIN
    return 1.0


def display_copy(photo: Image.Image) -> tuple[Image.Image, float]:
    """(the copy the annotator shows, photo pixels per display pixel)."""
    scale = display_scale(photo.width, photo.height)
    if scale == 1.0:
        return photo, 1.0
    size = (max(1, round(photo.width / scale)), max(1, round(photo.height / scale)))
    resample = Image.Resampling.LANCZOS if scale > 1 else Image.Resampling.BICUBIC
    return photo.resize(size, resample, reducing_gap=3.0 if scale > 1 else None), scale


def _colour(box: Box) -> str:
    index = box.class_index if box.class_index >= 0 else sum(map(ord, box.label)) % 1000
    return "rgb({}, {}, {})".format(*class_colour(index))


def to_annotator(boxes: Sequence[Box], scale: float) -> list[dict[str, Any]]:
    """Boxes in photo pixels -> the annotator's dicts in display pixels (rounded, as it returns them)."""
    return [
        {"xmin": round(b.x0 / scale), "ymin": round(b.y0 / scale), "xmax": round(b.x1 / scale),
         "ymax": round(b.y1 / scale), "label": b.label, "color": _colour(b)}
        for b in boxes
    ]


def _class_of(label: str, proposed: Sequence[Box]) -> int:
    known = next((b.class_index for b in proposed if b.label == label), None)
    if known is not None:
        return known
    try:
        return resolve_class(label)
    except UnknownClassError:
        return -1


def from_annotator(
    dicts: Sequence[dict[str, Any]], scale: float, width: int, height: int, proposed: Sequence[Box] = (),
    default_label: str = "object", method: str = "manual",
) -> list[Box]:
    """The annotator's boxes (display pixels) -> boxes in the photo's pixels, edges ordered and clipped.

    A box equal to a proposed one as shown (same label, same rounded corners) is that proposal, exact; one only
    relabelled keeps the proposal's exact corners; any other box is the user's (score 1, `method`). A box drawn
    without a label gets `default_label`.
    """
    shown, corners = {}, {}
    for b, d in zip(proposed, to_annotator(proposed, scale)):
        shown.setdefault((d["label"], d["xmin"], d["ymin"], d["xmax"], d["ymax"]), b)
        corners.setdefault((d["xmin"], d["ymin"], d["xmax"], d["ymax"]), b)
    out = []
    for d in dicts:
        label = str(d.get("label") or "").strip() or default_label
        x0, x1 = sorted((float(d["xmin"]), float(d["xmax"])))
        y0, y1 = sorted((float(d["ymin"]), float(d["ymax"])))
        key = (round(x0), round(y0), round(x1), round(y1))
        if (same := shown.get((label, *key))) is not None:
            out.append(same)
            continue
        if (kept := corners.get(key)) is not None:  # relabelled where it was proposed
            out.append(replace(kept, label=label, class_index=_class_of(label, proposed), score=1.0, method=method))
            continue
        x0, x1 = max(0.0, x0 * scale), min(float(width), x1 * scale)
        y0, y1 = max(0.0, y0 * scale), min(float(height), y1 * scale)
        if x1 - x0 >= 1 and y1 - y0 >= 1:
            out.append(Box(round(x0, 2), round(y0, 2), round(x1, 2), round(y1, 2), label,
                           _class_of(label, proposed), 1.0, method))
    return out
