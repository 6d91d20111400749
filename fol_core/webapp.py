"""What the web app computes, as plain functions: app.py only wires these to Gradio components.

Kept free of gradio so it can be tested alone and reused by other front ends. The annotator and the
images shown in the browser get a display copy of at most MAX_DISPLAY_SIDE pixels a side: a 100 MP
photo is never sent to the browser, and the annotator (whose coordinates go wrong on images larger
than its canvas, edgarGracia/gradio_image_annotator#33) works on a modest image whose boxes are
scaled back to the photo's own pixels here.
"""

from __future__ import annotations

import inspect
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from .draw import class_colour, draw_boxes, explain_figure, heatmap_overlay
from .formats import AnnotatedImage, coco, voc
from .imagenet import UnknownClassError, classes, resolve_class
from .images import ImageError, load_image
from .localize import localize
from .methods import CAM, FastLocalization, GradCAM
from .models import ModelUnavailableError, get_spec, load_model
from .result import Box, Localization

MAX_DISPLAY_SIDE = 1600
"""Longest side of the copy shown in the browser and in the annotator."""

METHOD_CHOICES = [("FOL (Fast Unsupervised Object Localization)", "fol"), ("Grad-CAM", "gradcam"), ("CAM", "cam")]
METHOD_NAMES = {"fol": "FOL", "gradcam": "Grad-CAM", "cam": "CAM"}
CLASS_MODES = [("Top-1 class", "top1"), ("Top-N classes (Algorithm 2)", "topn"), ("Classes I name", "named")]


class InputError(ValueError):
    """A request the app cannot run as given; the message is one line for the user."""


USER_ERRORS = (InputError, ImageError, ModelUnavailableError, UnknownClassError)
"""Errors whose message is meant for the user (the app shows it and goes on)."""


def _default(cls: type, name: str) -> Any:
    return inspect.signature(cls.__init__).parameters[name].default


FOL_DEFAULTS = {n: _default(FastLocalization, n) for n in ("k", "kmax", "percentile")}
"""The paper's defaults, read from the method so the app never disagrees with the engine."""
THRESHOLD_DEFAULT = _default(GradCAM, "threshold")
assert THRESHOLD_DEFAULT == _default(CAM, "threshold")


def default_layer(model_name: str, method: str) -> str:
    """The registry's layer for this model and method (FOL reads an inner layer, Grad-CAM/CAM the last)."""
    spec = get_spec(model_name)
    return spec.fol_layer if method == "fol" else spec.cam_layer


def class_choices() -> list[tuple[str, int]]:
    """The 1000 ImageNet classes as (shown text, index): synonyms shown so that typing any of them finds it."""
    return [(f"{', '.join(c.names[:3])} ({c.index})", c.index) for c in classes()]


@dataclass
class Photo:
    """What a session remembers of the photo it localized: where it is, its size and its display copy's size."""

    path: str
    file_name: str
    width: int
    height: int
    display_width: int
    display_height: int
    boxes: list[Box] = field(default_factory=list)
    """The boxes as localized, in the photo's pixels (kept exact when the user accepts them unchanged)."""

    @property
    def scale_x(self) -> float:
        """Photo pixels per display pixel, horizontally."""
        return self.width / self.display_width

    @property
    def scale_y(self) -> float:
        return self.height / self.display_height


def display_copy(image: Image.Image, max_side: int = MAX_DISPLAY_SIDE) -> Image.Image:
    """The photo shrunk to at most max_side pixels a side (unchanged when already small)."""
    if max(image.size) <= max_side:
        return image
    scale = max_side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def open_photo(path: str | None, file_name: str | None = None) -> tuple[Image.Image, Image.Image]:
    """The photo (full size) and its display copy; ImageError/InputError with a one-line reason otherwise."""
    if not path:
        raise InputError("Upload a photo or pick an example first.")
    photo = load_image(path, name=file_name or Path(path).name)
    return photo, display_copy(photo)


def scale_box(box: Box, sx: float, sy: float) -> Box:
    """The box with x multiplied by sx and y by sy (photo <-> display pixels)."""
    return replace(box, x0=box.x0 * sx, y0=box.y0 * sy, x1=box.x1 * sx, y1=box.y1 * sy)


def to_annotator(boxes: Sequence[Box], photo: Photo) -> list[dict[str, Any]]:
    """Boxes in the photo's pixels -> the annotator's dicts, in display pixels."""
    out = []
    for b in boxes:
        d = scale_box(b, 1 / photo.scale_x, 1 / photo.scale_y)
        out.append({
            "xmin": round(d.x0), "ymin": round(d.y0), "xmax": round(d.x1), "ymax": round(d.y1),
            "label": b.label, "color": class_colour(b.class_index),
        })
    return out


def _class_of(label: str) -> int:
    try:
        return resolve_class(label)
    except UnknownClassError:
        return -1


def from_annotator(dicts: Sequence[dict[str, Any]], photo: Photo) -> list[Box]:
    """The annotator's dicts (display pixels) -> boxes in the photo's pixels.

    A box the user left as it was keeps its exact coordinates and score; a moved, resized, relabelled
    or new box gets score 1 and method "manual". Edges are ordered and clipped to the photo."""
    shown = to_annotator(photo.boxes, photo)
    out = []
    for d in dicts:
        label = str(d.get("label") or "").strip() or "object"
        x0, x1 = sorted((float(d["xmin"]), float(d["xmax"])))
        y0, y1 = sorted((float(d["ymin"]), float(d["ymax"])))
        same = [
            b for b, s in zip(photo.boxes, shown)
            if s["label"] == label and max(abs(s[k] - v) for k, v in zip(("xmin", "ymin", "xmax", "ymax"), (x0, y0, x1, y1))) <= 1
        ]
        if same:
            out.append(same[0])
            continue
        idx = next((b.class_index for b in photo.boxes if b.label == label), None)
        box = Box(x0, y0, x1, y1, label, _class_of(label) if idx is None else idx, 1.0, "manual")
        box = scale_box(box, photo.scale_x, photo.scale_y)
        box = replace(box, x0=max(0.0, box.x0), y0=max(0.0, box.y0),
                      x1=min(float(photo.width), box.x1), y1=min(float(photo.height), box.y1))
        if box.x1 > box.x0 and box.y1 > box.y0:
            out.append(box)
    return out


def box_table(boxes: Sequence[Box]) -> list[list[Any]]:
    """Rows for a table of boxes in the photo's pixels."""
    return [[b.label, round(b.x0, 1), round(b.y0, 1), round(b.x1, 1), round(b.y1, 1), round(b.score, 3), b.method]
            for b in boxes]


BOX_TABLE_HEADERS = ["label", "x0", "y0", "x1", "y1", "score", "method"]


def method_params(method: str, k: int, kmax: int, percentile: float, layer: str | None,
                  threshold: float, otsu: bool) -> dict[str, Any]:
    """The method's keyword arguments from the Advanced panel; InputError when they do not fit together."""
    layer = (layer or "").strip() or None
    if method == "fol":
        k, kmax = int(k), int(kmax)
        if not 1 <= k <= kmax:
            raise InputError(f"k must be between 1 and kmax (got k={k}, kmax={kmax}).")
        if not 0 < float(percentile) < 100:
            raise InputError(f"The percentile must be between 0 and 100 (got {percentile}).")
        return {"k": k, "kmax": kmax, "percentile": float(percentile), "layer": layer}
    if method in ("gradcam", "cam"):
        if not otsu and not 0 <= float(threshold) < 1:
            raise InputError(f"The threshold is a fraction of the maximum, from 0 to 1 (got {threshold}).")
        return {"threshold": "otsu" if otsu else float(threshold), "layer": layer}
    raise InputError(f"Unknown method {method!r}.")


@dataclass
class LocalizeView:
    """Everything the Localize tab shows after one run."""

    boxed: Image.Image
    """The display copy with labelled boxes."""
    why: Image.Image
    """FOL: the paper's Figure 3 rows; Grad-CAM/CAM: the heatmap over the photo, one per class."""
    top5: dict[str, float]
    summary: str
    annotator: dict[str, Any]
    """The annotator's value: the display copy and the boxes in display pixels."""
    labels: list[str]
    """Labels offered when the user relabels or adds a box: the boxes' classes, then the top-5."""
    label_colors: list[str]
    """Each label's colour as #rrggbb, the colour its boxes are drawn in."""
    photo: Photo
    result: Localization


def _side_by_side(images: Sequence[Image.Image], gap: int = 8) -> Image.Image:
    out = Image.new("RGB", (sum(i.width for i in images) + gap * (len(images) - 1), max(i.height for i in images)),
                    (255, 255, 255))
    x = 0
    for im in images:
        out.paste(im, (x, 0))
        x += im.width + gap
    return out


def explanation_image(display: Image.Image, result: Localization) -> Image.Image:
    """FOL: Figure 3 of the paper (input, the chosen neurons' maps, their union, the box) per class.
    Grad-CAM/CAM: each class's heatmap over the photo with that class's boxes."""
    if result.method == "fol" or not result.explanations:
        return explain_figure(display, result)
    panels = []
    for e in result.explanations:
        small = display_copy(display, 640)
        sx, sy = small.width / result.width, small.height / result.height
        mine = [scale_box(b, sx, sy) for b in result.boxes if b.class_index == e.class_index]
        panel = draw_boxes(heatmap_overlay(small, e.heatmap), mine)
        ImageDraw.Draw(panel).text((4, panel.height - 16), f"{e.label}: p={e.probability:.2f}", fill=(255, 255, 255))
        panels.append(panel)
    return _side_by_side(panels)


def run_localize(path: str | None, model_name: str, method: str, class_mode: str, topn: int,
                 named: Sequence[str | int] | None, params: dict[str, Any], file_name: str | None = None
                 ) -> LocalizeView:
    """Localize the photo at `path` as the Localize tab asks; USER_ERRORS carry a message for the user."""
    photo, display = open_photo(path, file_name)
    if class_mode == "named" and not named:
        raise InputError("Pick at least one class from the list, or choose Top-1 / Top-N.")
    model = load_model(model_name)
    try:
        result = localize(
            photo, model, method,
            classes=list(named) if class_mode == "named" else None,
            topn=int(topn) if class_mode == "topn" else 1,
            **params,
        )
    except ValueError as exc:  # a bad layer, or CAM on a model without a GAP + linear head
        if isinstance(exc, USER_ERRORS):
            raise
        raise InputError(str(exc)) from None
    name = file_name or Path(path).name
    info = Photo(path, name, photo.width, photo.height, display.width, display.height, list(result.boxes))
    shown = replace(result, boxes=[scale_box(b, 1 / info.scale_x, 1 / info.scale_y) for b in result.boxes],
                    width=display.width, height=display.height)
    found = sorted({b.label for b in result.boxes})
    summary = (
        f"**{len(result.boxes)} box{'es' if len(result.boxes) != 1 else ''}**"
        f"{' for ' + ', '.join(found) if found else ''} with {METHOD_NAMES[method]}"
        f" on {result.model}, in {result.seconds:.2f} s. Photo: {photo.width} x {photo.height} pixels."
    )
    if not result.boxes:
        summary += " No region was large enough: try another class, Top-N, or a lower threshold."
    index_of = {n: i for i, n, _ in result.top5} | {b.label: b.class_index for b in result.boxes}
    labels = list(dict.fromkeys([b.label for b in result.boxes] + [n for _, n, _ in result.top5]))
    return LocalizeView(
        boxed=draw_boxes(display, shown.boxes),
        why=explanation_image(display, shown),
        top5={n: p for _, n, p in result.top5},
        summary=summary,
        annotator={"image": display, "boxes": to_annotator(result.boxes, info)},
        labels=labels,
        label_colors=["#{:02x}{:02x}{:02x}".format(*class_colour(index_of[n])) for n in labels],
        photo=info,
        result=result,
    )


def export_files(photo: Photo, boxes: Sequence[Box], out_dir: str | Path) -> tuple[Path, Path]:
    """The accepted boxes as Pascal VOC XML and COCO JSON in `out_dir`, in the photo's pixels."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    item = AnnotatedImage(photo.file_name, photo.width, photo.height, list(boxes))
    stem = Path(photo.file_name).stem or "photo"
    return voc.write(item, out / f"{stem}.xml"), coco.write([item], out / f"{stem}.coco.json")


def new_export_dir() -> str:
    """A fresh per-session folder for exports, in the system's temp folder (never in the repository)."""
    return tempfile.mkdtemp(prefix="fol-export-")


def remove_export_dir(path: str | None) -> None:
    """Delete a session's export folder when its session ends."""
    if path and Path(path).name.startswith("fol-export-"):
        shutil.rmtree(path, ignore_errors=True)
