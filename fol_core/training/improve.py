"""`improve`: learn from the boxes the reviewer accepted, and propose again for the images not reviewed yet.

Two things are learned from the accepted images, both on the frozen model's own outputs:
- the method's tuned parameter (CAM/Grad-CAM's threshold, FOL's percentile) that gives the accepted
  boxes the best mean IoU with the method's top box;
- a box refinement head: a ridge regression from the top box (its corners as fractions of the photo)
  to the accepted box, kept only if it beats no refinement in leave-one-out on the accepted images.
Then every image the reviewer has not decided on is proposed again; decisions are never touched.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..bootstrap.prelabel import PROJECT_RUN, LabelRequest, Progress, propose, require_fit
from ..bootstrap.project import Project, Review, Stage, open_project
from ..cli import whole
from ..errors import UserError, about
from ..evaluation.metrics import iou_matrix
from ..labelmap import LabelMap
from ..methods import create_method, get_method
from ..models import DEFAULT_MODEL, Classifier, load_model
from ..paths import exclusive
from ..result import Box

HELP = "learn from the accepted boxes of a project and propose again for the images not reviewed yet"
MIN_ACCEPTED = 3
MIN_REFINEMENT_GAIN = 0.001
"""A refinement gaining less (mean IoU, leave-one-out) changes the boxes by a hair: not applied."""
NOISE = 0.02
"""A mean IoU gain under this, on a few accepted images, is said to be within noise (the change is still made)."""
RIDGE = 1.0
"""The refinement's pull towards no change (the accepted images are few)."""


class ImproveError(UserError):
    """Nothing to learn from, or a project that cannot be improved; one line for the user."""


def top_box(boxes: list[Box]) -> Box | None:
    """The box a reviewer sees first: the best score, then the largest."""
    return max(boxes, key=lambda b: (round(b.score, 6), b.area), default=None)


def _norm(b: Box | np.ndarray, w: int, h: int) -> np.ndarray:
    x0, y0, x1, y1 = (b.x0, b.y0, b.x1, b.y1) if isinstance(b, Box) else b
    return np.array([x0 / w, y0 / h, x1 / w, y1 / h])


@dataclass
class Refinement:
    """Box corners (fractions of the photo) -> refined corners: x + [x, 1] @ coef."""

    coef: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, ridge: float = RIDGE) -> Refinement:
        a = np.hstack([x, np.ones((len(x), 1))])
        return cls(np.linalg.solve(a.T @ a + ridge * np.eye(a.shape[1]), a.T @ (y - x)))

    def apply(self, box: Box, w: int, h: int) -> Box:
        x = _norm(box, w, h)
        r = np.clip(x + np.append(x, 1.0) @ self.coef, 0.0, 1.0)
        x0, x1 = sorted((r[0] * w, r[2] * w))
        y0, y1 = sorted((r[1] * h, r[3] * h))
        return Box(x0, y0, x1, y1, box.label, box.class_index, box.score, box.method)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(iou_matrix(a[None], b[None])[0, 0])


def _loo_gain(x: np.ndarray, y: np.ndarray) -> float:
    """Mean IoU with the refinement fitted without each image, minus the mean IoU without refinement."""
    refined, plain = [], []
    for i in range(len(x)):
        rest = np.arange(len(x)) != i
        r = Refinement.fit(x[rest], y[rest])
        refined.append(_iou(np.clip(x[i] + np.append(x[i], 1.0) @ r.coef, 0, 1), y[i]))
        plain.append(_iou(x[i], y[i]))
    return float(np.mean(refined) - np.mean(plain))


@dataclass
class Learned:
    param: str | None
    value: object
    refinement: Refinement | None
    accepted: int
    iou_before: float
    """Mean IoU of the top box with the accepted boxes, at the project's settings."""
    iou_learned: float
    """The same at the learned parameter."""
    refinement_gain: float
    """Leave-one-out mean IoU gain of the refinement on the accepted images."""
    current: object = None
    """The parameter's value before (the project's, or the method's default)."""

    @property
    def changed(self) -> bool:
        """Whether the proposals would change: a new value, or a refinement."""
        return (self.param is not None and self.value != self.current) or self.refinement is not None

    def line(self) -> str:
        if not self.param:
            what = "the method's settings"
        elif self.value == self.current:
            what = f"{self.param} stays {self.value}"
        else:
            what = f"{self.param} {self.current} -> {self.value}"
        small = " (within noise)" if 0 < self.iou_learned - self.iou_before < NOISE else ""
        refine = (f"a box refinement (+{self.refinement_gain:.3f} IoU in leave-one-out)" if self.refinement is not None
                  else "no box refinement (it did not help in leave-one-out)")
        return (f"learned from {self.accepted} accepted images: {what} (their top box's mean IoU "
                f"{self.iou_before:.2f} -> {self.iou_learned:.2f}{small}) and {refine}")


def learn(project: Project, model: Classifier, method: str, params: dict, label_map: LabelMap) -> Learned:
    """The tuned parameter and the refinement that fit the accepted boxes best (see the module's docstring)."""
    tuned = get_method(method).tuned()
    current = params.get(tuned.name, tuned.default_for(model.imagenet)) if tuned else None
    values = sorted(set(tuned.grid) | {current}) if tuned and tuned.grid else [None]
    source = project.source()
    m = create_method(method, model, **params)
    rows = []  # per accepted image: (top box per value, the accepted boxes, w, h)
    for rec in project.images():
        if rec.review != Review.ACCEPTED or not rec.boxes:
            continue
        try:
            photo = source.open(rec.key)
        except (UserError, OSError):
            continue
        fp = m.forward(m.pixels(photo))
        target = LabelRequest(label_map, rec.boxes[0].label).targets(fp.probs)
        if not target:
            continue
        c = target[0].class_index
        expls = m.explain_each(fp, c, tuned.name, values) if tuned and tuned.grid else [m.explain(fp, c)]
        tops = [top_box(m.boxes(e, photo.width, photo.height)) for e in expls]
        truth = np.array([[b.x0, b.y0, b.x1, b.y1] for b in rec.boxes])
        rows.append((tops, truth, photo.width, photo.height))
    if len(rows) < MIN_ACCEPTED:
        raise ImproveError(f"accept at least {MIN_ACCEPTED} images with boxes first ({len(rows)} so far)")

    def iou_of(box: Box | None, truth: np.ndarray) -> float:
        return float(iou_matrix(np.array([[box.x0, box.y0, box.x1, box.y1]]), truth).max()) if box else 0.0

    table = np.array([[iou_of(t, truth) for t in tops] for tops, truth, _, _ in rows])
    best = max(range(len(values)), key=lambda i: (round(table[:, i].mean(), 6), -abs(values.index(current) - i)
                                                  if current in values else 0))
    x, y = [], []
    for tops, truth, w, h in rows:
        box = tops[best]
        if box is not None:
            b = np.array([box.x0, box.y0, box.x1, box.y1])
            match = truth[int(iou_matrix(b[None], truth)[0].argmax())]
            x.append(_norm(b, w, h))
            y.append(_norm(match, w, h))
    x, y = np.array(x), np.array(y)
    gain = _loo_gain(x, y) if len(x) >= MIN_ACCEPTED else 0.0
    refinement = Refinement.fit(x, y) if gain >= MIN_REFINEMENT_GAIN else None
    before = float(table[:, values.index(current)].mean()) if current in values else float(table[:, best].mean())
    return Learned(tuned.name if tuned and tuned.grid else None, values[best], refinement, len(rows), before,
                   float(table[:, best].mean()), gain, current)


def improve(project: Project, model: Classifier | None = None, method: str | None = None,
            progress: Progress | None = None, log: Callable[[str], None] = print) -> Learned:
    """Learn from the accepted boxes, then propose again for every image the reviewer has not decided on."""
    with exclusive(project.folder, PROJECT_RUN):
        return _improve(project, model, method, progress, log)


def _improve(project: Project, model: Classifier | None, method: str | None, progress: Progress | None,
             log: Callable[[str], None]) -> Learned:
    settings = project.meta("settings") or {}
    method = method or settings.get("method")
    if not method:
        raise ImproveError(f"{project.folder} has not been pre-labeled yet")
    model = model or load_model(settings.get("model") or DEFAULT_MODEL)
    params = dict(settings.get("params") or {}) if method == settings.get("method") else {}
    label_map = project.label_map
    require_fit(project, label_map, model, "improve it with that model (the default)")
    learned = learn(project, model, method, params, label_map)
    log(learned.line())
    if not learned.changed:  # e.g. the accepted boxes are the proposals as they were: nothing to propose anew
        log("nothing to change: the proposals stay as they are")
        return learned
    if learned.param:
        params[learned.param] = learned.value
    m = create_method(method, model, **params)
    todo = [r for r in project.images() if r.review is None and r.stage in (Stage.PROPOSED, Stage.NO_OBJECT)]
    source = project.source()
    for i, rec in enumerate(todo):
        try:
            photo = source.open(rec.key)
            prop = propose(photo, m, LabelRequest(label_map, rec.image_label, settings.get("topn", 1)))
        except (UserError, OSError) as exc:
            log(f"skipped {about(rec.key, exc)}")
            continue
        if learned.refinement is not None:
            prop.boxes = [learned.refinement.apply(b, photo.width, photo.height) for b in prop.boxes]
        project.save_prelabel(rec.id, stage=prop.stage, width=photo.width, height=photo.height, proposals=prop.boxes,
                              confidence=prop.confidence, top5=prop.top5, label_scores=prop.label_scores,
                              method=method, unreviewed_only=True)
        if progress:
            progress(i + 1, len(todo), rec.key)
    project.set_meta("settings", {**settings, "method": method, "params": params})
    project.set_meta("improve", {"accepted": learned.accepted, "param": learned.param, "value": learned.value,
                                 "refinement": None if learned.refinement is None else learned.refinement.coef.tolist(),
                                 "reproposed": len(todo)})
    log(f"proposed again for {len(todo)} images not reviewed yet")
    return learned


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("project", help="a pre-labeled project folder (exports/NAME)")
    parser.add_argument("--model", default=None, help="the model to propose with (default: the project's)")
    parser.add_argument("--method", default=None, help="the method (default: the project's)")
    parser.add_argument("--threads", type=whole(1), default=None, help="CPU threads (default: the libraries')")


def run(args: argparse.Namespace) -> int:
    project = open_project(args.project)
    try:
        improve(project, load_model(args.model) if args.model else None, args.method)
    finally:
        project.close()
    return 0
