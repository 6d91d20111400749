"""Run the methods over the samples (one forward pass per method and photo, the true class explained),
and choose a method's threshold on calibration images it is never scored on."""

from __future__ import annotations

import inspect
import itertools
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ..images import ImageError, load_image
from ..methods import METHODS, FastLocalization, ForwardPass, Method
from ..models import Classifier
from ..regions import binarize
from .dataset import Sample
from .metrics import IOU_CORRECT, as_boxes, best_match, iou_curve

HEATMAP_METHODS = ("gradcam", "cam")
"""Methods whose explanation is a class heatmap: they also get MaxBoxAccV2."""
TUNABLE: dict[str, tuple[str, tuple[float, ...]]] = {
    "fol": ("percentile", (50.0, 60.0, 70.0, 80.0, 90.0, 95.0)),
    "gradcam": ("threshold", tuple(round(0.05 * i, 2) for i in range(1, 20))),
    "cam": ("threshold", tuple(round(0.05 * i, 2) for i in range(1, 20))),
}
"""The parameter --calibrate chooses per method and the values it tries (plus the method's default)."""


@dataclass
class Outcome:
    """One method on one sample."""

    sample: Sample
    boxes: np.ndarray
    """(k, 4) the method's boxes for the sample's class, in the photo's pixels."""
    iou: float
    """Best IoU over (box, true box) pairs; 0 without a box."""
    best: int | None
    top1: int
    """The classifier's top-1 class on this photo."""
    seconds: float
    """Forward pass + explanation + boxes."""
    curve: np.ndarray | None = None
    """Heatmap methods: best IoU at each MaxBoxAccV2 threshold."""

    @property
    def best_box(self) -> np.ndarray | None:
        return None if self.best is None else self.boxes[self.best]

    @property
    def correct(self) -> bool:
        return self.iou >= IOU_CORRECT

    @property
    def top1_ok(self) -> bool:
        return self.top1 in self.sample.classes


def default_value(method: str, param: str) -> Any:
    """The method's own default for a parameter (read from its constructor, so it follows the engine)."""
    return inspect.signature(METHODS[method].__init__).parameters[param].default


def target_class(probs: torch.Tensor, classes: tuple[int, ...]) -> int:
    """GT-known: of the classes that count as the true label, the one the classifier finds likeliest."""
    return max(classes, key=lambda c: float(probs[c]))


def _photos(samples: list[Sample], desc: str, progress: bool) -> Iterator[tuple[Image.Image, list[Sample]]]:
    """Each readable photo once, with its samples; a bad photo is reported on one line and skipped."""
    groups = [(path, list(group)) for path, group in itertools.groupby(samples, key=lambda s: s.path)]
    for path, group in tqdm(groups, desc=desc, unit="img", disable=not progress, file=sys.stderr):
        try:
            photo = load_image(path)
        except ImageError as exc:
            tqdm.write(f"skipped {path.name}: {exc}", file=sys.stderr)
            continue
        s = group[0]
        if (photo.width, photo.height) != (s.width, s.height):
            tqdm.write(f"skipped {path.name}: the photo is {photo.width}x{photo.height} but its annotation says "
                       f"{s.width}x{s.height}", file=sys.stderr)
            continue
        yield photo, group


def evaluate(samples: list[Sample], clf: Classifier, methods: dict[str, dict[str, Any]],
             progress: bool = True) -> dict[str, list[Outcome]]:
    """Every method on every readable sample: the same photos for all, so the scores compare."""
    runners = {name: METHODS[name](clf, **params) for name, params in methods.items()}
    out: dict[str, list[Outcome]] = {name: [] for name in methods}
    for photo, group in _photos(samples, "eval", progress):
        pixels = clf.to_pixels(photo)
        for name, m in runners.items():
            start = time.perf_counter()
            fp = m.forward(pixels)
            forward_s = time.perf_counter() - start
            top1 = int(fp.probs.argmax())
            for s in group:
                start = time.perf_counter()
                expl = m.explain(fp, target_class(fp.probs, s.classes))
                boxes = as_boxes([(b.x0, b.y0, b.x1, b.y1) for b in m.boxes(expl, photo.width, photo.height)])
                seconds = forward_s + time.perf_counter() - start
                iou, best = best_match(boxes, s.boxes)
                curve = None
                if name in HEATMAP_METHODS and expl.heatmap is not None:
                    heat = cv2.resize(expl.heatmap.astype(np.float32), (photo.width, photo.height),
                                      interpolation=cv2.INTER_LINEAR)
                    curve = iou_curve(heat, s.boxes)
                out[name].append(Outcome(s, boxes, iou, best, top1, seconds, curve))
    return out


class _SharedMapsFOL(FastLocalization):
    """FOL that computes one photo's neuron ranking and guided maps once for all percentiles tried:
    only thresholding, blob cleaning and blob scoring rerun, so calibration costs little more than a run."""

    def __init__(self, model: Classifier, cache: dict, **params: Any) -> None:
        super().__init__(model, **params)
        self._cache = cache

    def select_neurons(self, fp: ForwardPass, class_index: int) -> list[tuple[int, int, int]]:
        key = ("neurons", id(fp), class_index)
        if key not in self._cache:
            self._cache[key] = super().select_neurons(fp, class_index)
        return self._cache[key]

    def neuron_maps(self, fp: ForwardPass, neurons: list[tuple[int, int, int]]) -> np.ndarray:
        key = ("maps", id(fp), tuple(neurons))
        if key not in self._cache:
            self._cache[key] = super().neuron_maps(fp, neurons)
        return self._cache[key]


def _variants(name: str, m: Method, clf: Classifier, params: dict[str, Any], param: str,
              values: list[float]) -> Callable[[ForwardPass, int, int, int], list[np.ndarray]]:
    """A function (forward pass, class, width, height) -> the boxes at each value of `param`."""

    def boxes_of(method: Method, expl: Any, width: int, height: int) -> np.ndarray:
        return as_boxes([(b.x0, b.y0, b.x1, b.y1) for b in method.boxes(expl, width, height)])

    if name == "fol":
        cache: dict = {}
        variants = [_SharedMapsFOL(clf, cache, **{**params, param: v}) for v in values]

        def run_fol(fp: ForwardPass, c: int, width: int, height: int) -> list[np.ndarray]:
            cache.clear()
            return [boxes_of(v, v.explain(fp, c), width, height) for v in variants]

        return run_fol

    def run_heatmap(fp: ForwardPass, c: int, width: int, height: int) -> list[np.ndarray]:
        expl = m.explain(fp, c)  # one heatmap; each threshold only re-binarizes it
        return [boxes_of(m, replace(expl, mask=binarize(expl.heatmap, v)), width, height) for v in values]

    return run_heatmap


def calibrate(samples: list[Sample], clf: Classifier, methods: dict[str, dict[str, Any]],
              progress: bool = True) -> dict[str, dict[str, Any]]:
    """For each method (not already fixed by the user), the value of its TUNABLE parameter with the best
    GT-known Loc on these samples (ties: best mean IoU, then the earlier value), with the whole curve."""
    plans = {}
    for name, params in methods.items():
        param, grid = TUNABLE[name]
        if param in params:
            continue
        default = default_value(name, param)
        values = sorted(set(grid) | ({float(default)} if isinstance(default, int | float) else set()))
        m = METHODS[name](clf, **params)
        plans[name] = (param, default, values, m, _variants(name, m, clf, params, param, values))
    if not plans:
        return {}
    ious: dict[str, list[list[float]]] = {name: [] for name in plans}
    photos = 0
    for photo, group in _photos(samples, "calibrate", progress):
        photos += 1
        pixels = clf.to_pixels(photo)
        for name, (_, _, _, m, run) in plans.items():
            fp = m.forward(pixels)
            for s in group:
                boxes = run(fp, target_class(fp.probs, s.classes), photo.width, photo.height)
                ious[name].append([best_match(b, s.boxes)[0] for b in boxes])
    report = {}
    for name, (param, default, values, _, _) in plans.items():
        table = np.asarray(ious[name], dtype=np.float64).reshape(-1, len(values))
        loc = (table >= IOU_CORRECT).mean(0) if len(table) else np.zeros(len(values))
        mean = table.mean(0) if len(table) else np.zeros(len(values))
        best = max(range(len(values)), key=lambda i: (loc[i], mean[i], -i))
        report[name] = {
            "param": param, "default": default, "chosen": values[best], "n_images": photos,
            "values": values, "gt_known_loc": loc.tolist(), "mean_iou": mean.tolist(),
        }
    return report
