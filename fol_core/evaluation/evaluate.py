"""Run the methods over the samples (one forward pass per method and photo, the true class explained),
and choose a method's threshold on calibration images it is never scored on."""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ..errors import about
from ..images import ImageError, load_image
from ..methods import create_method, get_method
from ..models import Classifier
from .dataset import Sample
from .metrics import IOU_CORRECT, as_boxes, best_match, iou_curve, iou_matrix


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
    def top_iou(self) -> float:
        """The method's top box (its first) against the true boxes: what a reviewer sees first."""
        return best_match(self.boxes[:1], self.sample.boxes)[0]

    @property
    def found(self) -> int:
        """How many true boxes some box of the method matches at IoU >= 0.5 (all-objects recall)."""
        ious = iou_matrix(self.boxes, self.sample.boxes)
        return int((ious.max(0) >= IOU_CORRECT).sum()) if ious.size else 0

    @property
    def best_box(self) -> np.ndarray | None:
        return None if self.best is None else self.boxes[self.best]

    @property
    def correct(self) -> bool:
        return self.iou >= IOU_CORRECT

    @property
    def top1_ok(self) -> bool:
        """The classifier's top-1 is the true class (class-agnostic samples: always, nothing to get wrong)."""
        return self.top1 in self.sample.classes or not self.sample.classes


def target_class(probs: torch.Tensor, classes: tuple[int, ...]) -> int:
    """GT-known: of the classes that count as the true label, the one the classifier finds likeliest;
    class-agnostic samples (no classes): the classifier's top-1."""
    return max(classes, key=lambda c: float(probs[c])) if classes else int(probs.argmax())


def _photos(samples: list[Sample], desc: str, progress: bool) -> Iterator[tuple[Image.Image, list[Sample]]]:
    """Each readable photo once, with its samples; a bad photo is reported on one line and skipped."""
    groups = [(path, list(group)) for path, group in itertools.groupby(samples, key=lambda s: s.path)]
    for path, group in tqdm(groups, desc=desc, unit="img", disable=not progress, file=sys.stderr):
        try:
            photo = load_image(path, name=path.name)
        except ImageError as exc:
            tqdm.write(f"skipped {about(path.name, exc)}", file=sys.stderr)
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
    runners = {name: create_method(name, clf, **params) for name, params in methods.items()}
    out: dict[str, list[Outcome]] = {name: [] for name in methods}
    for photo, group in _photos(samples, "eval", progress):
        for name, m in runners.items():
            start = time.perf_counter()
            fp = m.forward(m.pixels(photo))
            forward_s = time.perf_counter() - start
            top1 = int(fp.probs.argmax())
            for s in group:
                start = time.perf_counter()
                expl = m.explain(fp, target_class(fp.probs, s.classes))
                boxes = as_boxes([(b.x0, b.y0, b.x1, b.y1) for b in m.boxes(expl, photo.width, photo.height)])
                seconds = forward_s + time.perf_counter() - start
                iou, best = best_match(boxes, s.boxes)
                curve = None
                if m.heatmap and expl.heatmap is not None:
                    heat = cv2.resize(expl.heatmap.astype(np.float32), (photo.width, photo.height),
                                      interpolation=cv2.INTER_LINEAR)
                    curve = iou_curve(heat, s.boxes)
                out[name].append(Outcome(s, boxes, iou, best, top1, seconds, curve))
    return out


def calibrate(samples: list[Sample], clf: Classifier, methods: dict[str, dict[str, Any]],
              progress: bool = True) -> dict[str, dict[str, Any]]:
    """For each method (whose tuned parameter the user did not fix), the value of that parameter with the best
    GT-known Loc on these samples (ties: best mean IoU, then the earlier value), with the whole curve."""
    plans = {}
    for name, params in methods.items():
        tuned = get_method(name).tuned()
        if tuned is None or tuned.name in params:
            continue
        default = tuned.default_for(clf.imagenet)
        values = sorted(set(tuned.grid) | {float(default)})
        plans[name] = (tuned, values, create_method(name, clf, **params), default)
    if not plans:
        return {}
    ious: dict[str, list[list[float]]] = {name: [] for name in plans}
    photos = 0
    for photo, group in _photos(samples, "calibrate", progress):
        photos += 1
        for name, (tuned, values, m, _) in plans.items():
            fp = m.forward(m.pixels(photo))
            for s in group:
                expls = m.explain_each(fp, target_class(fp.probs, s.classes), tuned.name, values)
                boxes = [as_boxes([(b.x0, b.y0, b.x1, b.y1) for b in m.boxes(e, photo.width, photo.height)])
                         for e in expls]
                ious[name].append([best_match(b, s.boxes)[0] for b in boxes])
    report = {}
    for name, (tuned, values, _, default) in plans.items():
        table = np.asarray(ious[name], dtype=np.float64).reshape(-1, len(values))
        loc = (table >= IOU_CORRECT).mean(0) if len(table) else np.zeros(len(values))
        mean = table.mean(0) if len(table) else np.zeros(len(values))
        best = max(range(len(values)), key=lambda i: (loc[i], mean[i], -i))
        report[name] = {
            "param": tuned.name, "default": default, "chosen": values[best], "n_images": photos,
            "values": values, "gt_known_loc": loc.tolist(), "mean_iou": mean.tolist(),
        }
    return report
