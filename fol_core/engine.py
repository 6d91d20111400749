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
from .result import Box, Explanation, Localization

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
    return explain_pixels(method.pixels(photo), photo.size, method, request, min_area)


def explain_pixels(
    pixels: Any, size: tuple[int, int], method: Method, request: ClassRequest, min_area: float = 0.01,
) -> Localization:
    """`explain_photo` on the method's input made already (`Method.pixels`), for a photo of `size`."""
    start = time.perf_counter()
    fp = method.forward(pixels)
    probs = fp.probs
    targets = request.targets(probs)
    explanations = [method.explain(fp, t.class_index) for t in targets]
    return _localization(method, size, request, probs, targets, explanations, min_area, start)


def _localization(
    method: Method, size: tuple[int, int], request: ClassRequest, probs: torch.Tensor, targets: list[Target],
    explanations: list[Explanation], min_area: float, start: float,
) -> Localization:
    """The request's explanations labelled and boxed in the photo's pixels, with the top-5."""
    width, height = size
    boxes = []
    for t, expl in zip(targets, explanations):
        expl.label = t.label
        for b in method.boxes(expl, width, height, min_area):
            # the target's score, times the box's own rank within its class (WSDDN's region score relative to
            # its best; 1 for one-score methods), so the best box of a class stays first wherever boxes are sorted
            relative = b.score / expl.probability if expl.probability > 0 else 1.0
            b.label, b.score = t.label, t.score * min(relative, 1.0)
            boxes.append(b)
    if request.automatic and targets:
        boxes = drop_duplicate_boxes(boxes, keep={targets[0].class_index})
    probs = probs.cpu()
    p5, i5 = probs.topk(min(5, len(probs)))
    names = method.model.class_names
    return Localization(
        width=width, height=height, model=method.model.name, method=method.name, boxes=boxes,
        top5=[(int(i), names[int(i)], float(p)) for p, i in zip(p5, i5)],
        explanations=explanations, seconds=time.perf_counter() - start, probabilities=probs.numpy(),
    )


def explain_batch(
    pixels: torch.Tensor, sizes: Sequence[tuple[int, int]], method: Method, requests: Sequence[ClassRequest],
    min_area: float = 0.01,
) -> list[Localization]:
    """`explain_photo` for a batch: one forward pass for all the photos, and each explanation step once per
    round (round r explains the r-th requested class of every photo that has one: one, unless topn > 1).

    `pixels` is (B, 3, S, S) as `Classifier.to_pixels` makes them (the photos stretched to the model's
    square), `sizes` each photo's (width, height): its boxes come back in its own pixels. The boxes are
    those `explain_photo` gives photo by photo. `seconds` is the batch's time shared equally.
    """
    start = time.perf_counter()
    bp = method.forward_batch(pixels)
    probs = bp.probs.cpu()
    targets = [request.targets(p) for request, p in zip(requests, probs)]
    explanations: list[list[Explanation]] = [[] for _ in targets]
    for r in range(max((len(t) for t in targets), default=0)):
        wanted = [(row, t[r].class_index) for row, t in enumerate(targets) if len(t) > r]
        for (row, _), expl in zip(wanted, method.explain_batch(bp, wanted)):
            explanations[row].append(expl)
    del bp  # the graph is no longer needed: free it before boxing
    results = [
        _localization(method, size, request, p, t, e, min_area, start)
        for size, request, p, t, e in zip(sizes, requests, probs, targets, explanations)
    ]
    for res in results:
        res.seconds = (time.perf_counter() - start) / max(1, len(results))
    return results


def explain_photos(
    photos: Sequence[Any], method: Method, requests: Sequence[ClassRequest], min_area: float = 0.01,
) -> list[Localization]:
    """`explain_batch` for upright RGB PIL photos (see images.load_image); a method whose input keeps each
    photo's shape (not batchable) explains them one at a time."""
    if not method.batchable:
        return [explain_photo(p, method, r, min_area) for p, r in zip(photos, requests)]
    pixels = torch.cat([method.pixels(p) for p in photos])
    return explain_batch(pixels, [p.size for p in photos], method, requests, min_area)


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
