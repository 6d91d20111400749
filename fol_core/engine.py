"""The engine: one photo and a class request in; explanations, boxes and the top-5 out.

Every caller goes through `explain_photo`: the CLI and the app (through `localize`, which also loads
the photo, the model and the method by name) and the pre-labeler (with its label map's request).
A request says which classes to explain once the classifier's probabilities are known: the classes
the user named, Algorithm 2's top classes, or a label map's best labels.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torchvision.ops import box_iou

from .images import ImageSource, load_image
from .methods import DEFAULT_METHOD, Method, create_method
from .models import Classifier, load_model
from .result import Box, Localization

RATIO = 0.25
"""Algorithm 2: besides the top class, explain a class when its probability is at least RATIO x the top one's."""
DUPLICATE_IOU = 0.8
"""Of the automatically chosen classes, a box overlapping a better class's box this much is the same object."""


@dataclass(frozen=True)
class Target:
    """A class to explain, with the label and score its boxes carry."""

    class_index: int
    label: str
    score: float


class ClassRequest(Protocol):
    """Which classes to explain, decided from the classifier's probabilities."""

    automatic: bool
    """True when the engine chose the classes (then a box repeating a better class's box is dropped)."""

    def targets(self, probs: torch.Tensor) -> list[Target]: ...


def close_to_top(ranked: Sequence[float], topn: int = 1, ratio: float = RATIO, floor: float = 0.0) -> int:
    """Algorithm 2's rule on scores sorted best first: how many to keep. The first always (if it reaches
    `floor`), then each next one scoring at least ratio x the first and `floor`, at most topn."""
    if not ranked or ranked[0] < floor:
        return 0
    return 1 + sum(1 for v in ranked[1:max(1, topn)] if v >= max(floor, ratio * ranked[0]))


def select_classes(probs: torch.Tensor, topn: int = 1, ratio: float = RATIO) -> list[int]:
    """The classes Algorithm 2 explains: the top class, then each next with probability >= ratio x top."""
    values, indices = probs.topk(max(1, topn))
    return indices[: close_to_top(values.tolist(), topn, ratio)].tolist()


@dataclass(frozen=True)
class ImageNetRequest:
    """The model's classes (ImageNet's, or a trained model's own): the ones named (names, synonyms,
    WordNet ids or indices), else Algorithm 2's."""

    named: tuple[int, ...] = ()
    topn: int = 1
    ratio: float = RATIO
    names: tuple[str, ...] = ()
    """The model's class names, for the boxes' labels."""
    floor: float = 0.0
    """Automatic choice: the least probability a class needs (a trained model's sigmoid: 0.5, so a photo
    without any of its classes gets no box)."""

    @classmethod
    def of(cls, names: Iterable[str | int] | None = None, topn: int = 1, ratio: float = RATIO,
           model: Classifier | None = None) -> ImageNetRequest:
        """Resolve the names now against the model's classes (UnknownClassError for a name it lacks)."""
        clf = model or load_model()
        floor = 0.5 if clf.multilabel else 0.0
        return cls(tuple(dict.fromkeys(clf.resolve_class(c) for c in names or [])), topn, ratio,
                   tuple(clf.class_names), floor)

    @property
    def automatic(self) -> bool:
        return not self.named

    def targets(self, probs: torch.Tensor) -> list[Target]:
        if self.named:
            chosen = list(self.named)
        else:
            values, indices = probs.topk(min(max(1, self.topn), len(probs)))
            chosen = indices[: close_to_top(values.tolist(), self.topn, self.ratio, self.floor)].tolist()
        return [Target(c, self.names[c], float(probs[c])) for c in chosen]


def drop_duplicate_boxes(boxes: list[Box], keep: set[int]) -> list[Box]:
    """Drop an automatically chosen class's box that repeats a better class's box (e.g. tabby and tiger cat)."""
    out: list[Box] = []
    for b in sorted(boxes, key=lambda b: -b.score):
        t = torch.tensor([[b.x0, b.y0, b.x1, b.y1]])
        others = torch.tensor([[o.x0, o.y0, o.x1, o.y1] for o in out if o.class_index != b.class_index] or [[0.0] * 4])
        if b.class_index in keep or float(box_iou(t, others).max()) < DUPLICATE_IOU:
            out.append(b)
    return out


def explain_photo(photo: Any, method: Method, request: ClassRequest, min_area: float = 0.01) -> Localization:
    """One forward pass, the request's classes explained, their boxes in the photo's pixels, the top-5.

    `photo` is an upright RGB PIL image (see images.load_image).
    """
    start = time.perf_counter()
    fp = method.forward(method.pixels(photo))
    probs = fp.probs
    targets = request.targets(probs)
    explanations, boxes = [], []
    for t in targets:
        expl = method.explain(fp, t.class_index)
        expl.label = t.label
        explanations.append(expl)
        for b in method.boxes(expl, photo.width, photo.height, min_area):
            b.label, b.score = t.label, t.score
            boxes.append(b)
    if request.automatic and targets:
        boxes = drop_duplicate_boxes(boxes, keep={targets[0].class_index})
    p5, i5 = probs.topk(min(5, len(probs)))
    names = method.model.class_names
    return Localization(
        width=photo.width, height=photo.height, model=method.model.name, method=method.name, boxes=boxes,
        top5=[(int(i), names[int(i)], float(p)) for p, i in zip(p5, i5)],
        explanations=explanations, seconds=time.perf_counter() - start, probabilities=probs.numpy(),
    )


def localize(
    image: ImageSource,
    model: Classifier | str | None = None,
    method: str | Method = DEFAULT_METHOD,
    classes: Iterable[str | int] | None = None,
    topn: int = 1,
    ratio: float = RATIO,
    min_area: float = 0.01,
    **params: Any,
) -> Localization:
    """Boxes for the named classes, or for the top class(es) by Algorithm 2's rule when none are named.

    `image` is a path, bytes or PIL image; `model` a loaded Classifier or a registry name; `method` a
    method's name (then `params` go to it, e.g. k, percentile, layer, threshold) or a built Method.
    """
    start = time.perf_counter()
    photo = load_image(image)
    clf = model if isinstance(model, Classifier) else load_model(model) if model else load_model()
    m = method if isinstance(method, Method) else create_method(method, clf, **params)
    result = explain_photo(photo, m, ImageNetRequest.of(classes, topn, ratio, clf), min_area)
    result.seconds = time.perf_counter() - start
    result.image = str(image) if isinstance(image, (str, os.PathLike)) else ""
    return result
