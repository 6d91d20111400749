"""Localize a photo: one forward pass, the classes to explain (Algorithm 2), boxes in the photo's pixels."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any

import torch
from torchvision.ops import box_iou

from .imagenet import classes as imagenet_classes
from .imagenet import resolve_class
from .images import ImageSource, load_image
from .methods import METHODS
from .models import Classifier, load_model
from .result import Box, Localization

RATIO = 0.25
"""Algorithm 2: besides the top class, explain a class when its probability is at least RATIO x the top one's."""
DUPLICATE_IOU = 0.8
"""Of the automatically chosen classes, a box overlapping a better class's box this much is the same object."""


def close_to_top(ranked: list[float], topn: int = 1, ratio: float = RATIO, floor: float = 0.0) -> int:
    """Algorithm 2's rule on scores sorted best first: how many to keep. The first always (if it reaches
    `floor`), then each next one scoring at least ratio x the first and `floor`, at most topn."""
    if not ranked or ranked[0] < floor:
        return 0
    return 1 + sum(1 for v in ranked[1:max(1, topn)] if v >= max(floor, ratio * ranked[0]))


def select_classes(probs: torch.Tensor, topn: int = 1, ratio: float = RATIO) -> list[int]:
    """The classes Algorithm 2 explains: the top class, then each next with probability >= ratio x top."""
    values, indices = probs.topk(max(1, topn))
    return indices[: close_to_top(values.tolist(), topn, ratio)].tolist()


def drop_duplicate_boxes(boxes: list[Box], keep: set[int]) -> list[Box]:
    """Drop an automatically chosen class's box that repeats a better class's box (e.g. tabby and tiger cat)."""
    out: list[Box] = []
    for b in sorted(boxes, key=lambda b: -b.score):
        t = torch.tensor([[b.x0, b.y0, b.x1, b.y1]])
        others = torch.tensor([[o.x0, o.y0, o.x1, o.y1] for o in out if o.class_index != b.class_index] or [[0.0] * 4])
        if b.class_index in keep or float(box_iou(t, others).max()) < DUPLICATE_IOU:
            out.append(b)
    return out


def localize(
    image: ImageSource,
    model: Classifier | str | None = None,
    method: str = "fol",
    classes: Iterable[str | int] | None = None,
    topn: int = 1,
    ratio: float = RATIO,
    min_area: float = 0.01,
    **params: Any,
) -> Localization:
    """Boxes for the named classes, or for the top class(es) by Algorithm 2's rule when none are named.

    `params` go to the method (FOL: k, kmax, percentile, layer, schedule; Grad-CAM/CAM: layer, threshold).
    """
    start = time.perf_counter()
    photo = load_image(image)
    clf = model if isinstance(model, Classifier) else load_model(model or "efficientnet_lite0")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")
    m = METHODS[method](clf, **params)
    fp = m.forward(clf.to_pixels(photo))
    probs = fp.probs
    named = [resolve_class(c) for c in classes or []]
    targets = named or select_classes(probs, topn, ratio)
    explanations, boxes = [], []
    for c in dict.fromkeys(targets):
        expl = m.explain(fp, c)
        explanations.append(expl)
        boxes += m.boxes(expl, photo.width, photo.height, min_area)
    if not named:
        boxes = drop_duplicate_boxes(boxes, keep={targets[0]})
    p5, i5 = probs.topk(5)
    names = imagenet_classes()
    return Localization(
        width=photo.width, height=photo.height, model=clf.name, method=method, boxes=boxes,
        top5=[(int(i), names[int(i)].name, float(p)) for p, i in zip(p5, i5)],
        explanations=explanations, seconds=time.perf_counter() - start,
        image=str(image) if isinstance(image, (str, os.PathLike)) else "",
    )
