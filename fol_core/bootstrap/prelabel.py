"""`prelabel`: propose boxes for every image of a folder, zip or dataset, into a resumable project.

Per image: one forward pass; each user label's score is the sum of its classes' probabilities;
the best label (plus, with --topn, each next label scoring at least ratio x the best) is localized
with its most probable class and its boxes are named with the user label. When no label reaches
the map's threshold the image is marked "no object found" rather than given a forced box. An
image-level label (folder name, CSV) restricts the labels to those it names and is localized even
below the threshold: the paper's class query.

Each image's result is committed to the project database as soon as it is computed, so a run that
is stopped carries on where it was when started again, without redoing or duplicating an image.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from tqdm import tqdm

from ..cli import add_method_arguments, add_model_arguments, method_params
from ..engine import RATIO, Target, close_to_top, explain_photo
from ..errors import UserError, about, line, one_line
from ..labelmap import LabelMap, load_label_map
from ..methods import DEFAULT_METHOD, METHODS, Method, create_method
from ..models import Classifier, load_model
from ..result import Box
from .project import DB_NAME, MARKER, Project, Stage, read_marker
from .sources import SHOW_FIRST, Source, SourceError, open_source, source_spec

HELP = "pre-label a folder, zip or dataset of images into a resumable review project"

KEEP_SCORES = 10
"""Label scores kept per image (the best ones), for the review's display."""
PREFETCH = 4
"""Images decoded ahead of the model, in a background thread."""

Progress = Callable[[int, int, str], None]
"""progress(done, total, message) for the app's progress bar."""


@dataclass(frozen=True)
class LabelRequest:
    """The engine's class request for a label map: the image's best user label(s), each localized with its
    most probable class; none when no label reaches the map's threshold (unless the image is labelled)."""

    label_map: LabelMap
    image_label: str | None = None
    topn: int = 1
    ratio: float = RATIO

    @property
    def automatic(self) -> bool:
        return not self.wanted

    @property
    def wanted(self) -> list[str]:
        return self.label_map.candidates(self.image_label) if self.image_label else []

    def targets(self, probs: torch.Tensor) -> list[Target]:
        scores = self.label_map.scores(probs)
        if self.wanted:
            chosen = [max(self.wanted, key=scores.__getitem__)]
        else:
            ranked = sorted(scores, key=scores.__getitem__, reverse=True)
            chosen = ranked[: close_to_top([scores[n] for n in ranked], self.topn, self.ratio, self.label_map.threshold)]
        return [Target(self.label_map.best_class(n, probs), n, round(scores[n], 5)) for n in chosen]


@dataclass
class Proposal:
    """What the pre-labeler says about one image."""

    stage: str
    """proposed or no_object."""
    boxes: list[Box]
    confidence: float
    """The localized (or, with no object, the best) label's score: the review sorts by it."""
    top5: list[dict]
    label_scores: dict[str, float]


def propose(photo: Image.Image, method: Method, request: LabelRequest, min_area: float = 0.01) -> Proposal:
    """Boxes for the image's best user label(s), or no_object when none scores label_map.threshold."""
    result = explain_photo(photo, method, request, min_area)
    scores = request.label_map.scores(torch.from_numpy(result.probabilities))
    ranked = sorted(scores, key=scores.__getitem__, reverse=True)
    chosen = [e.label for e in result.explanations]
    return Proposal(
        stage=Stage.PROPOSED if chosen else Stage.NO_OBJECT,
        boxes=result.boxes,
        confidence=scores[chosen[0]] if chosen else scores[ranked[0]],
        top5=result.top5_dicts(),
        label_scores={n: round(scores[n], 5) for n in ranked[:KEEP_SCORES]},
    )


@dataclass
class RunSummary:
    done: int = 0
    proposed: int = 0
    no_object: int = 0
    failed: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    remaining: int = 0
    notes: list[str] = field(default_factory=list)
    """What was left out or not understood (files a zip could not give, CSV rows, image labels no label
    of the map matches), one line each."""

    @property
    def images_per_second(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        return (
            f"{self.done} images in {self.seconds:.1f} s ({self.images_per_second:.2f} images/s): "
            f"{self.proposed} with boxes, {self.no_object} no object found, {self.failed} failed"
            + (f"; {self.remaining} left" if self.remaining else "")
        )


def _prefetch(source: Source, keys: list[str]) -> Iterator[tuple[str, Future]]:
    """Decode images in a background thread, at most PREFETCH ahead of the model."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending: list[tuple[str, Future]] = []
        for key in keys:
            pending.append((key, pool.submit(source.open, key)))
            if len(pending) > PREFETCH:
                yield pending.pop(0)
        yield from pending


def open_run(
    source: str | dict,
    out: str,
    image_labels: str | None = None,
    split: str | None = None,
    overwrite: bool = False,
) -> tuple[Project, int]:
    """Open (or create) the project in `out` for a source and register its images; returns (project, new images).

    A project this call creates is removed again when its source cannot be opened: no half-made project is left."""
    spec = source if isinstance(source, dict) else source_spec(source, image_labels, split)
    folder = Path(out)
    existed, new = folder.exists(), read_marker(folder) is None
    others = existed and folder.is_dir() and any(folder.iterdir())  # files that are not ours (with overwrite)
    project = Project.create(folder, spec, overwrite=overwrite)
    try:
        src = open_source(spec, project.folder)
        project.use_source(src)
        return project, project.add_items(src.items())
    except BaseException as exc:
        if new:  # undo what this call made, and only that
            project.close()
            if others:
                for name in (MARKER, DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm"):
                    (folder / name).unlink(missing_ok=True)
            else:
                shutil.rmtree(folder, ignore_errors=True)
                if existed:
                    folder.mkdir()
        if isinstance(exc, OSError):
            raise SourceError(about(str(spec.get("root") or spec.get("path") or out), exc)) from None
        raise


def run_prelabel(
    project: Project,
    model: Classifier,
    method: str = DEFAULT_METHOD,
    params: dict | None = None,
    label_map: LabelMap | None = None,
    limit: int | None = None,
    topn: int = 1,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
) -> RunSummary:
    """Pre-label the project's images not done yet (at most `limit`), committing each as it is done.
    A trained model's labels are its own classes."""
    if not model.imagenet:
        if label_map is not None and label_map.model_classes != tuple(model.class_names):
            raise UserError(f"{model.name} names its own classes ({', '.join(model.class_names)}): "
                            "pre-label with it without a label map")
        label_map = LabelMap.for_classes(model.class_names, (model.card or {}).get("threshold", 0.5))
    if label_map is not None:
        project.set_label_map(label_map)
    lm = project.label_map
    project.set_meta("settings", {"model": model.name, "method": method, "params": params or {}, "topn": topn})
    m = create_method(method, model, **(params or {}))
    todo = project.todo(limit)
    summary = RunSummary(notes=[*project.source().notes, *unknown_labels(todo, lm)])
    by_key = {r.key: r for r in todo}
    start = time.perf_counter()
    source = project.source()
    if progress:
        progress(0, len(todo), "")
    for key, future in _prefetch(source, [r.key for r in todo]):
        rec = by_key[key]
        t0 = time.perf_counter()
        try:
            photo = future.result()
            prop = propose(photo, m, LabelRequest(lm, rec.image_label, topn))
        except (UserError, OSError) as exc:
            message = about(rec.key, exc)
            project.save_prelabel(rec.id, stage=Stage.FAILED, error=message, method=method)
            summary.failed += 1
            summary.errors.append(message)
            if log:
                log(f"skipped {message}")
        else:
            project.save_prelabel(
                rec.id, stage=prop.stage, width=photo.width, height=photo.height, proposals=prop.boxes,
                confidence=prop.confidence, top5=prop.top5, label_scores=prop.label_scores, method=method,
                seconds=time.perf_counter() - t0,
            )
            summary.proposed += prop.stage == Stage.PROPOSED
            summary.no_object += prop.stage == Stage.NO_OBJECT
        summary.done += 1
        if progress:
            progress(summary.done, len(todo), rec.key)
    summary.seconds = time.perf_counter() - start
    summary.remaining = project.counts()["new"]
    return summary


def unknown_labels(records: list, label_map: LabelMap) -> list[str]:
    """A note on the image-level labels that name nothing in the map: those images are pre-labeled as if
    unlabelled (the best label wins), which the user should know."""
    unknown: dict[str, int] = {}
    for rec in records:
        if rec.image_label and not label_map.candidates(rec.image_label):
            unknown[rec.image_label] = unknown.get(rec.image_label, 0) + 1
    if not unknown:
        return []
    first = ", ".join(repr(u) for u in list(unknown)[:SHOW_FIRST])
    more = ", ..." if len(unknown) > SHOW_FIRST else ""
    note = (f"{sum(unknown.values())} image(s) carry a label the map does not know ({len(unknown)} label(s): "
            f"{first}{more}); they were pre-labeled as unlabelled")
    return [line(note)]


def prelabel_folder(
    source: str,
    out: str | Path,
    labels_text: str | None = None,
    image_labels: str | None = None,
    method: str = DEFAULT_METHOD,
    limit: int | None = None,
    overwrite: bool = False,
    model: Classifier | None = None,
    progress: Progress | None = None,
) -> tuple[Project, RunSummary, int]:
    """The app's pre-label run: a label map as text (empty: keep the project's, else ImageNet's names),
    then open or resume the project and pre-label it. Returns (project, summary, images new to the project)."""
    label_map = LabelMap.parse(labels_text) if labels_text and labels_text.strip() else None
    project, new = open_run(source, str(out), image_labels, overwrite=overwrite)
    summary = run_prelabel(project, model or load_model(), method, label_map=label_map, limit=limit, progress=progress)
    return project, summary, new


# --- command line -----------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="a folder (recursive), a .zip, a saved dataset folder, hf:DIR (imagefolder) or hf:OWNER/NAME")
    parser.add_argument("--out", help="the project folder, e.g. exports/NAME (required unless --bench)")
    parser.add_argument("--labels", default=None, help="label map (YAML/JSON); default: ImageNet's class names")
    parser.add_argument("--min-score", type=float, default=None, help="least label score to count as found (default: the map's, else 0.1)")
    parser.add_argument("--image-labels", default=None, help="image-level labels: 'folders' (the parent folder's name) or a CSV (image,label)")
    parser.add_argument("--split", default=None, help="dataset split (default: all)")
    parser.add_argument("--topn", type=int, default=1, help="localize up to N labels per image (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=None, help="pre-label at most N images in this run")
    parser.add_argument("--overwrite", action="store_true", help="start the project in --out again if it holds another source")
    parser.add_argument("--bench", action="store_true", help="time every method on --limit images (default 20) in a scratch project, print images/s")
    add_model_arguments(parser)
    add_method_arguments(parser)


def _bench(args: argparse.Namespace, model: Classifier, label_map: LabelMap) -> int:
    """images/s per method on the same images, in a throw-away project (nothing written in --out)."""
    limit = args.limit or 20
    print(f"pre-label throughput, model {model.name}, {torch.get_num_threads()} threads, {limit} images from {args.source}")
    for method in (m for m, cls in METHODS.items() if not cls.unavailable(model)):
        with tempfile.TemporaryDirectory() as tmp:
            project, _ = open_run(args.source, tmp, args.image_labels, args.split)
            warm = project.todo(1)
            if warm:  # first-call allocations are not the method's cost
                propose(project.source().open(warm[0].key), create_method(method, model), LabelRequest(label_map))
            summary = run_prelabel(project, model, method, label_map=label_map, limit=limit)
            project.close()
        print(f"  {method:<8} {summary.images_per_second:6.2f} images/s  ({summary.done} images in {summary.seconds:.1f} s)")
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        model = load_model(args.model, args.weights)
        params = method_params(args, args.method)
        label_map = load_label_map(args.labels, args.min_score)
        if args.bench:
            return _bench(args, model, label_map)
        if not args.out:
            print("error: --out is required (the project folder, e.g. exports/NAME)", file=sys.stderr)
            return 2
        project, new = open_run(args.source, args.out, args.image_labels, args.split, args.overwrite)
    except UserError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    counts = project.counts()
    print(f"{project.folder}: {counts['total']} images ({new} new), {counts['new']} to pre-label")
    bar = tqdm(total=min(counts["new"], args.limit or counts["new"]), desc="prelabel", unit="img")

    def progress(done: int, total: int, key: str) -> None:
        bar.n = done
        bar.refresh()

    try:
        summary = run_prelabel(
            project, model, args.method, params,
            label_map if args.labels or args.min_score is not None else None,
            args.limit, args.topn, progress, log=lambda s: tqdm.write(s, file=sys.stderr),
        )
    finally:
        bar.close()
    print(summary.line())
    for note in summary.notes:
        print(f"note: {note}", file=sys.stderr)
    counts = project.counts()
    print(f"review: {counts['pending']} pending, {counts['accepted']} accepted, {counts['rejected']} rejected")
    project.close()
    return 1 if summary.failed else 0
