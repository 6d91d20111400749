"""What the web app computes, as plain functions: app.py only wires these to Gradio components.

Kept free of gradio so it can be tested alone and reused by other front ends. The annotator and the
images shown in the browser get a display copy (fol_core.annotator): a 100 MP photo is never sent to
the browser, and the boxes are scaled back to the photo's own pixels.
"""

from __future__ import annotations

import inspect
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from PIL import Image

from .annotator import display_copy, from_annotator, to_annotator
from .draw import class_colour, draw_boxes, explain_figure, heatmap_figure, scale_boxes
from .formats import AnnotatedImage, coco, voc
from .imagenet import UnknownClassError, classes
from .images import ImageError, load_image
from .localize import localize
from .methods import CAM, FastLocalization, GradCAM
from .models import ModelUnavailableError, get_spec, load_model
from .result import Box, Localization

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
    """What a session remembers of the photo it localized: where it is, its size, its display scale."""

    path: str
    file_name: str
    width: int
    height: int
    scale: float
    """Photo pixels per display pixel."""
    boxes: list[Box] = field(default_factory=list)
    """The boxes as localized, in the photo's pixels (kept exact when the user accepts them unchanged)."""

    def to_annotator(self, boxes: Sequence[Box]) -> list[dict[str, Any]]:
        return to_annotator(boxes, self.scale)

    def from_annotator(self, dicts: Sequence[dict[str, Any]]) -> list[Box]:
        """The user's boxes in the photo's pixels; untouched ones exactly as localized."""
        return from_annotator(dicts, self.scale, self.width, self.height, self.boxes)


def open_photo(path: str | None, file_name: str | None = None) -> tuple[Image.Image, Image.Image, float]:
    """The photo (full size), its display copy and the display scale; ImageError/InputError otherwise."""
    if not path:
        raise InputError("Upload a photo or pick an example first.")
    photo = load_image(path, name=file_name or Path(path).name)
    return (photo, *display_copy(photo))


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


def explanation_image(display: Image.Image, result: Localization) -> Image.Image:
    """FOL: Figure 3 of the paper (input, the chosen neurons' maps, their union, the box) per class.
    Grad-CAM/CAM: each class's heatmap over the photo with that class's boxes."""
    if result.method == "fol" or not result.explanations:
        return explain_figure(display, result)
    return heatmap_figure(display, result)


def run_localize(path: str | None, model_name: str, method: str, class_mode: str, topn: int,
                 named: Sequence[str | int] | None, params: dict[str, Any], file_name: str | None = None
                 ) -> LocalizeView:
    """Localize the photo at `path` as the Localize tab asks; USER_ERRORS carry a message for the user."""
    photo, display, scale = open_photo(path, file_name)
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
    info = Photo(path, name, photo.width, photo.height, scale, list(result.boxes))
    shown = replace(result, boxes=scale_boxes(result.boxes, 1 / scale, 1 / scale),
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
        annotator={"image": display, "boxes": info.to_annotator(result.boxes)},
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
