"""The Localize tab: one photo in; labelled boxes, the evidence behind them, editable boxes and exports out.

The annotator and the images shown in the browser get a display copy (fol_core.annotator): a 100 MP
photo is never sent to the browser, and the boxes are scaled back to the photo's own pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from PIL import Image

from ..annotator import display_copy, from_annotator, to_annotator
from ..draw import class_colour, draw_boxes, explain_figure, heatmap_figure, hex_colour, scale_boxes
from ..engine import localize
from ..errors import UserError
from ..formats import AnnotatedImage, coco, voc
from ..hierarchy import lemmas, shared_group
from ..imagenet import ImageNetClass, classes, rank, rank_names
from ..images import load_image, portable_bytes, stored_misread
from ..methods import METHODS, Param, get_method
from ..models import get_spec, is_trained_model, load_model, read_card
from ..result import Box, Localization

CLASS_MODES = [("Top-1 class", "top1"), ("Top-N classes (Algorithm 2)", "topn"), ("Classes I name", "named")]


class InputError(UserError):
    """A request the Localize tab cannot run as given."""


@dataclass(frozen=True)
class Control:
    """One control of the Advanced panel: a method's parameter, or the switch to one of its words
    (Grad-CAM's "use Otsu's threshold instead"). Generated from the methods' declarations."""

    method: str
    param: Param
    word: str | None = None


CONTROLS = [Control(name, p, w) for name, m in METHODS.items() for p in m.params if p.advanced
            for w in (None, *p.words)]
"""Every method's Advanced controls, in the order the app lays them out and passes their values back."""
MODEL_CONTROLS = [i for i, c in enumerate(CONTROLS)
                  if not c.word and (c.param.name == "layer" or c.param.trained_default is not None)]
"""The positions in CONTROLS of the controls whose default depends on the model (reset when it changes)."""


def default_layer(model_name: str, method: str) -> str:
    """The registry's layer for this model and method (FOL reads an inner layer, Grad-CAM/CAM the last)."""
    return get_method(method).default_layer(get_spec(model_name))


def control_default(control: Control, model_name: str) -> Any:
    """A control's starting value (layers: the registry's for the model; a trained model's own defaults)."""
    if control.word:
        return False
    if control.param.name == "layer":
        return default_layer(model_name, control.method)
    return control.param.default_for(not is_trained_model(model_name))


def model_defaults(model_name: str) -> list[Any]:
    """The starting values of MODEL_CONTROLS for this model."""
    return [control_default(CONTROLS[i], model_name) for i in MODEL_CONTROLS]


def method_params(method: str, values: Sequence[Any]) -> dict[str, Any]:
    """The chosen method's parameters from the Advanced panel's values (aligned with CONTROLS), checked
    (ParamError); a parameter left empty keeps the method's default."""
    params: dict[str, Any] = {}
    for control, value in zip(CONTROLS, values):
        if control.method == method and (control.word is None or value):
            params[control.param.name] = control.param.parse(control.word or value)
    return {k: v for k, v in params.items() if v is not None}


def _choice(c: ImageNetClass) -> tuple[str, int]:
    return f"{', '.join(c.names[:3])} ({c.index})", c.index


def method_choices(model_name: str) -> list[tuple[str, str]]:
    """The Method lists' (title, name) for a model: the methods that run on it (WSDDN only on a trained model), so
    that a visitor is never offered one that can only fail."""
    model = load_model(model_name)
    return [(m.title, name) for name, m in METHODS.items() if m.unavailable(model) is None]


def class_choices(model_name: str | None = None) -> list[tuple[str, int]]:
    """The classes a model can be asked for, as (shown text, index): a trained model's own, or the 1000 ImageNet
    classes with synonyms shown so that typing any of them finds it."""
    if model_name and is_trained_model(model_name):
        return [(name, i) for i, name in enumerate(read_card(model_name)["classes"])]
    return [_choice(c) for c in classes()]


def rank_classes(query: str, model_name: str | None = None) -> list[tuple[str, int]]:
    """The model's classes matching `query`, best first (imagenet.rank_names), as class_choices' (shown text,
    index): the dropdown's own filter keeps its choices' order, in which "cup" finds porcupine first."""
    if model_name and is_trained_model(model_name):
        choices = class_choices(model_name)
        return [choices[i] for i in rank_names(query, [[name] for name, _ in choices])]
    return [_choice(c) for c in rank(query)]


def classes_label(model_name: str) -> str:
    """The named-classes list's title: whose classes it offers."""
    trained = is_trained_model(model_name)
    return f"Classes of {Path(model_name).name}" if trained else "ImageNet classes (type to filter)"


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


UNSURE = 0.5
"""Below this top-1 probability the classifier is more often wrong than right: on the 500 photos of the dev set
(shared/data/imagenet-val-dev, efficientnet_lite0) its top-1 class was right for 41% of the 99 photos below 0.5
and for 90% of the 401 above. Where the top 5's classes of one WordNet group hold UNSURE together
(hierarchy.shared_group) the caution says so: on the dev set's test half (GROUP_MAX chosen on the calib half,
80% right there) the true class was in that group for 19 of 24 such photos (79%), against 25 of 55 (45%) for
the unsure top-1 (mscam's probabilities; scripts/caution_groups.py)."""
WHOLE_PHOTO = 0.9
"""A box over more than this share of the photo says little about where the object is."""


def caution(result: Localization, named: bool = False, imagenet: bool = True) -> str:
    """A warning for the summary when the result deserves a second look, else "": the classifier is unsure of
    the class it localized (top-1 probability below UNSURE; not asked when the user named the classes), perhaps
    sure of its group (an ImageNet model's top 5 in one WordNet group), or a box covers almost the whole photo
    (more than WHOLE_PHOTO of its area)."""
    notes = []
    if not named and result.top5 and result.top5[0][2] < UNSURE:
        _, name, p = result.top5[0]
        group = shared_group([(i, q) for i, _, q in result.top5], UNSURE) if imagenet else None
        if group:
            wnid, total, members = group
            word = lemmas(wnid)[0].replace("_", " ")
            which = ", ".join(f"{n} {q:.0%}" for i, n, q in result.top5 if i in members)
            article = "an" if word[:1].lower() in "aeiou" else "a"
            notes.append(f"the classifier is sure of {article} {word} ({total:.0%}: {which}), not of which one: "
                         "check the class, or name one (*Classes I name*)")
        else:
            notes.append(f"the classifier is unsure ({name} {p:.0%}): check the class, or name one (*Classes I name*)")
    area = result.width * result.height
    if area and any((b.x1 - b.x0) * (b.y1 - b.y0) > WHOLE_PHOTO * area for b in result.boxes):
        notes.append("a box covers almost the whole photo, so it says little about where the object is")
    return f"⚠️ Careful: {'; '.join(notes)}." if notes else ""


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
    """Heatmap methods: each class's heatmap over the photo with that class's boxes. FOL: Figure 3 of the
    paper (input, the chosen neurons' maps, their union, the box) per class."""
    if get_method(result.method).heatmap and result.explanations:
        return heatmap_figure(display, result)
    return explain_figure(display, result)


def run_localize(path: str | None, model_name: str, method: str, class_mode: str, topn: int,
                 named: Sequence[str | int] | None, params: dict[str, Any], file_name: str | None = None
                 ) -> LocalizeView:
    """Localize the photo at `path` as the Localize tab asks (UserError: a message for the user)."""
    photo, display, scale = open_photo(path, file_name)
    if class_mode == "named" and not named:
        raise InputError("Pick at least one class from the list, or choose Top-1 / Top-N.")
    model = load_model(model_name)
    result = localize(photo, model, method, classes=list(named) if class_mode == "named" else None,
                      topn=int(topn) if class_mode == "topn" else 1, **params)
    name = file_name or Path(path).name
    info = Photo(path, name, photo.width, photo.height, scale, list(result.boxes))
    shown = replace(result, boxes=scale_boxes(result.boxes, 1 / scale, 1 / scale),
                    width=display.width, height=display.height)
    found = sorted({b.label for b in result.boxes})
    summary = (
        f"**{len(result.boxes)} box{'es' if len(result.boxes) != 1 else ''}**"
        f"{' for ' + ', '.join(found) if found else ''} with {get_method(method).title}"
        f" on {Path(result.model).name}, in {result.seconds:.2f} s. Photo: {photo.width} x {photo.height} pixels."
    )
    if not result.boxes:
        summary += " No region was large enough: try another class, Top-N, or a lower threshold."
    if warning := caution(result, class_mode == "named", model.imagenet):
        summary += f"  \n{warning}"
    index_of = {n: i for i, n, _ in result.top5} | {b.label: b.class_index for b in result.boxes}
    labels = list(dict.fromkeys([b.label for b in result.boxes] + [n for _, n, _ in result.top5]))
    return LocalizeView(
        boxed=draw_boxes(display, shown.boxes),
        why=explanation_image(display, shown),
        top5={n: p for _, n, p in result.top5},
        summary=summary,
        annotator={"image": display, "boxes": info.to_annotator(result.boxes)},
        labels=labels,
        label_colors=[hex_colour(class_colour(index_of[n])) for n in labels],
        photo=info,
        result=result,
    )


def export_files(photo: Photo, boxes: Sequence[Box], out_dir: str | Path) -> tuple[Path, Path, Path | None]:
    """The accepted boxes as Pascal VOC XML and COCO JSON in `out_dir`, in the photo's pixels; and, for a photo
    stored sideways with an EXIF orientation, the photo written upright (else None): the boxes and sizes are the
    upright photo's, which a reader that ignores EXIF would not see in the file as uploaded."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    item = AnnotatedImage(photo.file_name, photo.width, photo.height, list(boxes))
    stem = Path(photo.file_name).stem or "photo"
    turned = None
    if stored_misread(photo.path, depth=False):  # a header read; an upload Gradio's cache has cleared is not
        upright = portable_bytes(Path(photo.path).read_bytes(), depth=False)
        if upright is not None:
            turned = out / "upright" / Path(photo.file_name).name  # the photo's own name, in a folder of its own
            turned.parent.mkdir(exist_ok=True)
            turned.write_bytes(upright)
    return voc.write(item, out / f"{stem}.xml"), coco.write([item], out / f"{stem}.coco.json"), turned
