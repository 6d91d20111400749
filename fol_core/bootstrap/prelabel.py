"""`prelabel`: propose boxes for every image of a folder, zip or dataset, into a resumable project.

Per image: one forward pass; each user label's score is the sum of its classes' probabilities;
the best label (plus, with --topn, each next label scoring at least ratio x the best) is localized
with its most probable class and its boxes are named with the user label. When no label reaches
the map's threshold the image is marked "no object found" rather than given a forced box. An
image-level label (folder name, CSV) restricts the labels to those it names and is localized even
below the threshold: the paper's class query.

Images go through the engine in batches (decoded ahead by DataLoader workers); each batch's results are
committed to the project database in one transaction before they count as done, so a run that is stopped
carries on where it was when started again, without redoing or duplicating an image. `--engine ray` runs
the same batches in a Ray Data actor pool (fol_core.bootstrap.distributed), this process the only writer.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from tqdm import tqdm

from ..cli import add_method_arguments, add_model_arguments, method_params, real, whole
from ..engine import RATIO, Target, close_to_top, explain_batch, explain_photo, explain_pixels
from ..errors import UserError, about, line, one_line
from ..images import IMAGE_SUFFIXES
from ..labelmap import LabelMap, load_label_map
from ..methods import DEFAULT_METHOD, METHODS, Method, create_method, get_method
from ..models import DEFAULT_MODEL, Classifier, load_model
from ..paths import exclusive
from ..result import Box, Localization
from .project import DB_NAME, MARKER, ImageRecord, PrelabelResult, Project, Stage, read_marker
from .sources import SHOW_FIRST, Source, SourceError, is_negative, open_source, same_source, source_spec

HELP = "pre-label a folder, zip or dataset of images into a resumable review project"
PROJECT_RUN = "pre-labeled or improved"
"""What a project is being while a run holds it (`exclusive`): pre-label and improve runs exclude each other."""

KEEP_SCORES = 10
"""Label scores kept per image (the best ones), for the review's display."""
BATCH_SIZE = 8
"""Images per engine batch (and per database commit). On a CPU a larger batch runs no faster (README's bench)."""
WORKERS = 1
"""Processes decoding images ahead of the model."""

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
    def negative(self) -> bool:
        """The image is labelled as holding none of the classes ("background", "none", ...): no box is proposed."""
        return is_negative(self.image_label)

    @property
    def wanted(self) -> list[str]:
        return self.label_map.candidates(self.image_label) if self.image_label and not self.negative else []

    def targets(self, probs: torch.Tensor) -> list[Target]:
        scores = self.label_map.scores(probs)
        if self.negative:
            return []
        if self.wanted:
            chosen = [max(self.wanted, key=scores.__getitem__)]
        else:
            ranked = sorted(scores, key=scores.__getitem__, reverse=True)
            chosen = ranked[: close_to_top([scores[n] for n in ranked], self.topn, self.ratio, self.label_map.threshold)]
        targets: dict[int, Target] = {}  # a class in two labels gives the same box once, with the better label
        for n in chosen:
            c = self.label_map.best_class(n, probs)
            targets.setdefault(c, Target(c, n, round(scores[n], 5)))
        return list(targets.values())


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
    return _proposal(explain_photo(photo, method, request, min_area), request)


def propose_batch(
    pixels: torch.Tensor, sizes: Sequence[tuple[int, int]], method: Method, requests: Sequence[LabelRequest],
    min_area: float = 0.01,
) -> list[Proposal]:
    """`propose` for a batch of photos as `Classifier.to_pixels` makes them, through the batched engine."""
    return [_proposal(r, q) for r, q in zip(explain_batch(pixels, sizes, method, requests, min_area), requests)]


def _proposal(result: Localization, request: LabelRequest) -> Proposal:
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

    def add(self, keys: list[str], results: list[PrelabelResult], log: Callable[[str], None] | None = None) -> None:
        """Count a committed batch (the images' keys and results)."""
        for key, r in zip(keys, results):
            self.done += 1
            self.proposed += r.stage == Stage.PROPOSED
            self.no_object += r.stage == Stage.NO_OBJECT
            if r.stage == Stage.FAILED:
                self.failed += 1
                self.errors.append(about(key, r.error or "failed"))
                if log:
                    log(f"skipped {self.errors[-1]}")

    @property
    def images_per_second(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        if not self.done:
            return "no image left to pre-label" + (f"; {self.remaining} left" if self.remaining else "")
        return (
            f"{self.done} image{'' if self.done == 1 else 's'} in {self.seconds:.1f} s ({self.images_per_second:.2f} images/s): "
            f"{self.proposed} with boxes, {self.no_object} no object found, {self.failed} failed"
            + (f"; {self.remaining} left" if self.remaining else "")
        )


@dataclass
class Decoded:
    """One image ready for the model: its pixels and size, or why it could not be read."""

    image_id: int
    key: str
    image_label: str | None
    pixels: Any = None
    """The method's input (Method.pixels): (1, 3, S, S) for a batchable method."""
    size: tuple[int, int] = (0, 0)
    error: str | None = None


def decode(source: Source, image_id: int, key: str, image_label: str | None, method: Method) -> Decoded:
    """Read one image and make the method's input of it (a worker's job); an unreadable one comes back with
    its one-line error."""
    try:
        photo = source.open(key)
    except (UserError, OSError) as exc:
        return Decoded(image_id, key, image_label, error=about(key, exc))
    return Decoded(image_id, key, image_label, method.pixels(photo), photo.size)


class _Photos(torch.utils.data.Dataset):
    """The records to pre-label, decoded by the DataLoader's workers."""

    def __init__(self, source: Source, records: list[ImageRecord], method: Method) -> None:
        self.source, self.records, self.method = source, records, method

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> Decoded:
        r = self.records[i]
        return decode(self.source, r.id, r.key, r.image_label, self.method)


def photo_batches(
    source: Source, records: list[ImageRecord], method: Method, batch_size: int, workers: int,
) -> Iterator[list[Decoded]]:
    """Batches of decoded images, `workers` processes decoding ahead of the model (0: in this process)."""
    loader = torch.utils.data.DataLoader(
        _Photos(source, records, method), batch_size=batch_size, num_workers=workers, collate_fn=list,
        prefetch_factor=2 if workers else None,
    )
    yield from loader


def label_batch(
    batch: list[Decoded], method: Method, label_map: LabelMap, topn: int = 1, min_area: float = 0.01,
) -> list[PrelabelResult]:
    """The results to store for a batch of decoded images: proposals, or the reason an image failed."""
    start = time.perf_counter()
    ok = [d for d in batch if d.error is None]
    out = {
        d.image_id: PrelabelResult(d.image_id, Stage.FAILED, error=d.error, method=method.name) for d in batch if d.error
    }
    requests = [LabelRequest(label_map, d.image_label, topn) for d in ok]
    try:
        if method.batchable:
            pixels = torch.cat([d.pixels for d in ok]) if ok else None
            props = propose_batch(pixels, [d.size for d in ok], method, requests, min_area) if ok else []
        else:  # inputs of each photo's own shape: one photo at a time
            props = [_proposal(explain_pixels(d.pixels, d.size, method, q, min_area), q) for d, q in zip(ok, requests)]
    except UserError as exc:  # an image's request failed the batch: find which, photo by photo
        if len(ok) > 1:
            return [r for d in batch for r in label_batch([d], method, label_map, topn, min_area)]
        out[ok[0].image_id] = PrelabelResult(ok[0].image_id, Stage.FAILED, error=one_line(exc), method=method.name)
        props = []
    seconds = (time.perf_counter() - start) / max(1, len(ok))
    for d, prop in zip(ok, props):
        out[d.image_id] = PrelabelResult(
            d.image_id, prop.stage, d.size[0], d.size[1], prop.boxes, prop.confidence, prop.top5,
            prop.label_scores, None, method.name, seconds,
        )
    return [out[d.image_id] for d in batch]


def open_run(
    source: str | dict,
    out: str,
    image_labels: str | None = None,
    split: str | None = None,
    overwrite: bool = False,
) -> tuple[Project, int]:
    """Open (or create) the project in `out` for a source and register its images, the ones that failed before
    to be tried again; returns (project, new images).

    A project this call creates is removed again when its source cannot be opened: no half-made project is left."""
    spec = source if isinstance(source, dict) else source_spec(source, image_labels, split)
    named = str(spec.get("root") or spec.get("path") or out)  # what the messages call the source
    folder = Path(out)
    existed, new = folder.exists(), read_marker(folder) is None
    others = existed and folder.is_dir() and any(folder.iterdir())  # files that are not ours (with overwrite)
    project = Project.create(folder, spec, overwrite=overwrite)
    try:
        src = open_source(spec, project.folder)
        project.use_source(src)
        added = project.add_items(src.items())
        project.retry_failed()
        if new and not added:  # a wrong folder or an empty zip: say so, leave no empty project behind
            raise SourceError(f"{named}: no images to pre-label ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return project, added
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
            raise SourceError(about(named, exc)) from None
        raise


def run_prelabel(
    project: Project,
    model: Classifier,
    method: str | None = None,
    params: dict | None = None,
    label_map: LabelMap | None = None,
    limit: int | None = None,
    topn: int | None = None,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
    batch_size: int = BATCH_SIZE,
    workers: int = WORKERS,
) -> RunSummary:
    """Pre-label the project's images not done yet (at most `limit`), `batch_size` at a time through the batched
    engine, decoded by `workers` processes ahead of it; each batch is committed before it counts as done.
    What the caller leaves out (None) is the project's own setting (`settle`)."""
    run, m, todo, summary = begin(project, model, method, params, label_map, limit, topn, progress)
    start = time.perf_counter()
    for batch in photo_batches(project.source(), todo, m, batch_size, workers):
        results = label_batch(batch, m, project.label_map, run.topn)
        project.save_prelabels(results)  # committed before any of them counts as done
        summary.add([d.key for d in batch], results, log)
        if progress:
            progress(summary.done, len(todo), batch[-1].key)
    summary.seconds = time.perf_counter() - start
    summary.remaining = project.counts()["new"]
    return summary


def begin(project: Project, model: Classifier, method: str | None, params: dict | None, label_map: LabelMap | None,
          limit: int | None, topn: int | None, progress: Progress | None = None,
          ) -> tuple[RunSettings, Method, list[ImageRecord], RunSummary]:
    """A run's start, on any engine: its settings (`settle`), its method (bad parameters refused here, in one
    line), the images it will do, and a summary holding every note so far; the progress bar at 0."""
    run = settle(project, model, method, params, label_map, topn)
    m = create_method(run.method, model, **run.params)
    todo = project.todo(limit)
    summary = RunSummary(notes=[*run.notes, *project.source().notes, *unknown_labels(todo, project.label_map)])
    if progress:
        progress(0, len(todo), "")
    return run, m, todo, summary


@dataclass
class RunSettings:
    """What a run labels with (the project's "settings", with the model's name), and the notes on what changed."""

    method: str
    params: dict[str, Any]
    topn: int
    notes: list[str]


def settle(project: Project, model: Classifier, method: str | None, params: dict | None, label_map: LabelMap | None,
           topn: int | None) -> RunSettings:
    """Save and return what this run labels with: the caller's choices, and for what it leaves out the project's
    own, so that a run started again goes on as the project began (its method, `improve`'s learned setting);
    a note for each setting that changes from the project's earlier images (none saved when nothing is left).
    A trained model's labels are its own classes; a model the project's labels do not fit is refused."""
    if not model.imagenet:
        if label_map is not None and not label_map.fits(model):
            raise UserError(f"{model.name} names its own classes ({', '.join(model.class_names)}): "
                            "pre-label with it without a label map")
        label_map = LabelMap.for_classes(model.class_names, (model.card or {}).get("threshold", 0.5))
    if label_map is not None:
        project.set_label_map(label_map)
    require_fit(project, project.label_map, model, f"carry on with that model, or give {Path(model.name).name} a label map")
    before = project.meta("settings") or {}
    method = method or before.get("method") or DEFAULT_METHOD
    params = {**(before.get("params") or {} if method == before.get("method") else {}), **(params or {})}
    settings = {"model": model.name, "method": method, "params": params, "topn": topn or before.get("topn") or 1}
    counts = project.counts()
    if not counts["new"]:  # nothing left to label: the project's settings stay what its images were labelled with
        return RunSettings(method, params, settings["topn"], [])
    notes = list(project.label_map.notes())
    if counts["total"] > counts["new"]:  # images pre-labeled before this run
        for key, value in settings.items():
            old = before.get(key)
            same = Path(old).resolve() == Path(value).resolve() if key == "model" and old else old == value
            if old is not None and not same and (key != "params" or method == before.get("method")):
                notes.append(line(f"this project's images so far were pre-labeled with {_said(key, old)}, "
                                  f"these with {_said(key, value)}"))
    project.set_meta("settings", settings)
    return RunSettings(method, params, settings["topn"], notes)


def _said(key: str, value: Any) -> str:
    """A setting of the project's, as a note names it."""
    if key == "params":
        return ", ".join(f"{k} {v}" for k, v in value.items()) or "the method's defaults"
    if key == "topn":
        return f"up to {value} label(s) per image"
    return f"{key} {Path(value).name if key == 'model' else value}"


def begun_with(out: str | Path, source: dict) -> dict:
    """The settings the project in `out` was last pre-labeled or improved with, when a run of `source` carries it
    on; else {} (no project there yet, or another source's)."""
    if read_marker(Path(out)) is None:
        return {}
    project = Project(out)
    try:
        return project.meta("settings") or {} if same_source(project.meta("source"), source) else {}
    finally:
        project.close()


def require_fit(project: Project, label_map: LabelMap, model: Classifier, advice: str) -> None:
    """Refuse, in one line ending with `advice`, a model whose classes the project's labels do not name (a trained
    model's project proposed again with the ImageNet model, or the other way round): its scores would be nonsense,
    or not fit at all."""
    if not label_map.fits(model):
        used = Path((project.meta("settings") or {}).get("model") or "another model").name
        raise UserError(f"this project's labels are the classes of {used}, the model it was pre-labeled with: "
                        f"{advice}")


def unknown_labels(records: list, label_map: LabelMap) -> list[str]:
    """A note on the image-level labels that name nothing in the map: those images are pre-labeled as if
    unlabelled (the best label wins), which the user should know."""
    unknown: dict[str, int] = {}
    for rec in records:
        if rec.image_label and not is_negative(rec.image_label) and not label_map.candidates(rec.image_label):
            unknown[rec.image_label] = unknown.get(rec.image_label, 0) + 1
    if not unknown:
        return []
    first = ", ".join(repr(u) for u in list(unknown)[:SHOW_FIRST])
    more = ", ..." if len(unknown) > SHOW_FIRST else ""
    note = (f"{sum(unknown.values())} image(s) carry a label the map does not know ({len(unknown)} label(s): "
            f"{first}{more}); they were pre-labeled as unlabelled (a class the model lacks needs a model trained on "
            "it: the train command, or the app's Train tab)")
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
    topn: int | None = None,
) -> tuple[Project, RunSummary, int]:
    """The app's pre-label run: a label map as text (empty: keep the project's, else ImageNet's names),
    then open or resume the project and pre-label it (`topn`: labels per image, None: the project's). Returns
    (project, summary, images new to the project)."""
    label_map = LabelMap.parse(labels_text) if labels_text and labels_text.strip() else None
    with exclusive(out, PROJECT_RUN):
        project, new = open_run(source, str(out), image_labels, overwrite=overwrite)
        summary = run_prelabel(project, model or load_model(), method, label_map=label_map, limit=limit,
                               topn=topn, progress=progress)
    return project, summary, new


# --- command line -----------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="a folder (recursive), a .zip, a saved dataset folder, hf:DIR (imagefolder) or hf:OWNER/NAME")
    parser.add_argument("--out", help="the project folder, e.g. exports/NAME (required unless --bench)")
    parser.add_argument("--labels", default=None, help="label map (YAML/JSON); default: ImageNet's class names")
    parser.add_argument("--min-score", type=real(0, 1), default=None, help="least label score to count as found (default: the map's, else 0.1)")
    parser.add_argument("--image-labels", default=None, help="image-level labels: 'folders' (the class folder: the "
                        "first under the source, whatever lies below it) or a CSV (image,label)")
    parser.add_argument("--split", default=None, help="dataset split (default: all)")
    parser.add_argument("--topn", type=whole(1), default=None, help="localize up to N labels per image (default: the project's, else 1)")
    parser.add_argument("--limit", type=whole(1), default=None, help="pre-label at most N images in this run")
    parser.add_argument("--overwrite", action="store_true", help="start the project in --out again if it holds another source")
    parser.add_argument("--engine", default="local", choices=("local", "ray"),
                        help="local: this process, batched; ray: a Ray Data actor pool (default: %(default)s)")
    parser.add_argument("--batch-size", type=whole(1), default=BATCH_SIZE, help="images per engine batch and per commit (default: %(default)s)")
    parser.add_argument("--workers", type=whole(0), default=WORKERS, help="local engine: processes decoding ahead of the model (default: %(default)s)")
    parser.add_argument("--actors", type=whole(1), default=None, help="ray: model actors (default: one per CPU of the local Ray)")
    parser.add_argument("--gpus-per-actor", type=real(0), default=0.0, help="ray: GPUs per actor (0: CPU actors; default: %(default)s)")
    parser.add_argument("--address", default=None, help="ray: a running cluster's address (default: start Ray on this machine, 127.0.0.1)")
    parser.add_argument("--bench", nargs="?", const="all", default=None, metavar="METHODS",
                        help="time METHODS (comma-separated; default all) on --limit images (default 20) in scratch projects: "
                             "one at a time, batched, and with --engine ray on Ray; print images/s")
    add_model_arguments(parser, resumed=True)
    add_method_arguments(parser, resumed=True)


def _engine_run(args: argparse.Namespace, project: Project, model: Classifier, method: str, params: dict | None,
                label_map: LabelMap | None, **kwargs) -> RunSummary:
    """One pre-label run on the engine the arguments choose."""
    if args.engine == "ray":
        from .distributed import run_prelabel_ray

        return run_prelabel_ray(
            project, model.name, method, params, label_map, args.limit, args.topn, batch_size=args.batch_size,
            actors=args.actors, gpus_per_actor=args.gpus_per_actor, threads=args.threads or 1,
            address=args.address, weights=args.weights, **kwargs,
        )
    return run_prelabel(project, model, method, params, label_map, args.limit, args.topn, batch_size=args.batch_size,
                        workers=args.workers, **kwargs)


def _bench(args: argparse.Namespace, model: Classifier, label_map: LabelMap) -> int:
    """images/s per method and engine on the same images, in throw-away projects (nothing written in --out).

    Two rates: the whole run, and the steady state after the first committed batch (what a long run gets:
    Ray's actors load their model during the first batch). With --engine ray, Ray is started once, before."""
    args.limit = args.limit or 20
    chosen = list(METHODS) if args.bench == "all" else [m.strip() for m in args.bench.split(",")]
    engines = {"one at a time": {"engine": "local", "batch_size": 1, "workers": 0},
               f"batched ({args.batch_size}, {args.workers} decoder)": {"engine": "local"}}
    started = False
    if args.engine == "ray":
        from .distributed import actor_count, start_ray

        started = start_ray(args.address)
        engines[f"ray ({args.actors or 'one per CPU'} actors)"] = {"engine": "ray"}
    print(f"pre-label throughput, model {model.name}, {torch.get_num_threads()} threads, "
          f"up to {args.limit} images from {args.source}")
    try:
        for method in (get_method(m).name for m in chosen):
            if get_method(method).unavailable(model):
                continue
            params = method_params(args, method)  # the options given apply to every method that has them
            m = create_method(method, model, **params)
            for engine, settings in engines.items():
                run_args = argparse.Namespace(**{**vars(args), **settings})
                marks: list[tuple[int, float]] = []
                with tempfile.TemporaryDirectory() as tmp:
                    project, _ = open_run(args.source, tmp, args.image_labels, args.split)
                    warm = project.todo(1)
                    if warm:  # first-call allocations are not the method's cost
                        propose(project.source().open(warm[0].key), m, LabelRequest(label_map))
                    summary = _engine_run(run_args, project, model, method, params, label_map,
                                          progress=lambda done, total, key, marks=marks: marks.append((done, time.perf_counter())))
                    project.close()
                # after each actor's first batch (Ray's actors deliver theirs nearly together, after loading the model)
                first_done = run_args.batch_size * (actor_count(args.actors) if run_args.engine == "ray" else 1)
                first, last = next(((d, t) for d, t in marks if d >= first_done), marks[-1]), marks[-1]
                steady = f"{(last[0] - first[0]) / (last[1] - first[1]):6.2f}" if last[0] > first[0] else "   n/a"
                print(f"  {method:<8} {engine:<26} {summary.images_per_second:6.2f} images/s, {steady} after the "
                      f"first batch  ({summary.done} images in {summary.seconds:.1f} s)", flush=True)
    finally:
        if started:
            import ray

            ray.shutdown()
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        if args.bench:
            return _bench(args, load_model(args.model or DEFAULT_MODEL, args.weights),
                          load_label_map(args.labels, args.min_score))
        if not args.out:
            print("error: --out is required (the project folder, e.g. exports/NAME)", file=sys.stderr)
            return 2
        with exclusive(args.out, PROJECT_RUN):
            spec = source_spec(args.source, args.image_labels, args.split)
            before = {} if args.overwrite else begun_with(args.out, spec)
            args.method = args.method or before.get("method") or DEFAULT_METHOD
            params = method_params(args, args.method)
            label_map = load_label_map(args.labels, args.min_score)
            model = load_model(args.model or before.get("model") or DEFAULT_MODEL, args.weights)
            return _prelabel_into(args, spec, model, params, label_map)
    except UserError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2


def _prelabel_into(args: argparse.Namespace, spec: dict, model: Classifier, params: dict,
                   label_map: LabelMap | None) -> int:
    """The CLI's run of the source `spec` into --out, which the caller holds (exclusive)."""
    project, new = open_run(spec, args.out, overwrite=args.overwrite)
    counts = project.counts()
    print(f"{project.folder}: {counts['total']} images ({new} new), {counts['new']} to pre-label")
    bar = tqdm(total=min(counts["new"], args.limit or counts["new"]), desc="prelabel", unit="img")

    def progress(done: int, total: int, key: str) -> None:
        bar.n = done
        bar.refresh()

    try:
        summary = _engine_run(
            args, project, model, args.method, params, label_map if args.labels or args.min_score is not None else None,
            progress=progress, log=lambda s: tqdm.write(s, file=sys.stderr),
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
