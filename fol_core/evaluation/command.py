"""`eval`: score fol, Grad-CAM and CAM against a Pascal VOC folder's boxes, beside two constant boxes."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from ..cli import add_method_arguments, add_model_arguments, method_params, whole
from ..errors import UserError, one_line
from ..formats import voc
from ..methods import METHODS, get_method
from ..models import load_model
from .dataset import SPLITS, DatasetError, build_mosaics, load_dataset, load_label_map, split_ids

HELP = "score the methods' boxes against a Pascal VOC folder's boxes (GT-known/Top-1 Loc, IoU, MaxBoxAccV2)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="Pascal VOC folder: Annotations/*.xml, JPEGImages/, optional ImageSets/Main")
    add_model_arguments(parser)
    parser.add_argument("--split", default=None, choices=SPLITS,
                        help="images to score: the image list's even 0-based positions (calib), odd ones (test) "
                             "or all (default: test with --calibrate, else all)")
    tuned = ", ".join(f"{name}: {m.tuned().name}" for name, m in METHODS.items() if m.tuned())
    parser.add_argument("--calibrate", nargs="?", const="", default=None, metavar="DIR",
                        help=f"choose each method's tuned parameter ({tuned}) by GT-known Loc before scoring, unless "
                             "given: on the calib split, or on all of another VOC folder DIR")
    add_method_arguments(parser, several=True)
    parser.add_argument("--labels", default=None, metavar="FILE",
                        help="YAML/JSON label map {label: [ImageNet names, indices or WordNet ids]} "
                             "(default: object names are WordNet ids)")
    parser.add_argument("--imageset", default=None, metavar="NAME", help="image list ImageSets/Main/NAME.txt")
    parser.add_argument("--limit", type=whole(1), default=None, help="score (and calibrate on) at most N images each")
    parser.add_argument("--agnostic", action="store_true",
                        help="class-agnostic: explain the classifier's top-1 class, every true box counts whatever "
                             "its name (a class the model lacks, e.g. raccoon-dev)")
    parser.add_argument("--mosaics", action="store_true",
                        help="score on two-photo mosaics of the split's images (both classes named), written to "
                             "OUT/mosaics; calibration stays on single photos")
    parser.add_argument("--sheet", type=whole(0), default=8, help="worst and best images per method on its sheet (0: no sheets)")
    parser.add_argument("--out", default="exports/eval", help="output folder (default: %(default)s)")


def _command(args: argparse.Namespace, methods: list[str], split: str) -> str:
    """The command line that reproduces this run (shown in results.json/md)."""
    parts = ["python -m fol_core eval", shlex.quote(str(args.dataset)), "--methods", ",".join(methods),
             "--model", args.model, "--split", split]
    given = dict.fromkeys(p.name for m in methods for p in get_method(m).params)
    options = (("--calibrate", args.calibrate), *((f"--{n.replace('_', '-')}", getattr(args, n)) for n in given),
               ("--labels", args.labels), ("--imageset", args.imageset), ("--limit", args.limit),
               ("--agnostic", "" if args.agnostic else None), ("--mosaics", "" if args.mosaics else None))
    for flag, value in options:
        if value is not None:
            parts += [flag] + ([shlex.quote(str(value))] if value != "" else [])
    return " ".join(parts + ["--out", shlex.quote(str(args.out))])


def run(args: argparse.Namespace) -> int:
    from .evaluate import calibrate, evaluate
    from .plots import write_plots
    from .report import build_results, comparisons_table, kinds_table, markdown_table, write_reports

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    split = args.split or ("test" if args.calibrate == "" else "all")
    if args.calibrate == "" and split != "test":
        print("error: --calibrate tunes on the calib split, so only --split test may be scored", file=sys.stderr)
        return 2
    root = Path(args.dataset)
    try:
        if not methods:
            raise DatasetError(f"name at least one method: {', '.join(METHODS)}")
        params = {m: method_params(args, m) for m in methods}  # also refuses an unknown method
        model = load_model(args.model, args.weights)
        label_map = load_label_map(args.labels) if args.labels else None
        if label_map is None and not model.imagenet:  # a trained model's labels are its classes
            label_map = {n: (i,) for i, n in enumerate(model.class_names)}
        ids = voc.image_ids(root, args.imageset) if (root / voc.ANNOTATIONS).is_dir() else []
        data = load_dataset(root, split_ids(ids, split)[: args.limit], label_map, agnostic=args.agnostic)
        if args.mosaics:
            data = build_mosaics(data, Path(args.out) / "mosaics")
        calib = None
        if args.calibrate == "":
            calib = load_dataset(root, split_ids(ids, "calib")[: args.limit], label_map, agnostic=args.agnostic)
        elif args.calibrate is not None:
            other = Path(args.calibrate)
            if other.resolve() == root.resolve():
                raise DatasetError("--calibrate DIR must be another folder; without DIR it uses the calib split")
            calib = load_dataset(other, voc.image_ids(other, args.imageset)[: args.limit], label_map,
                                 agnostic=args.agnostic)
    except UserError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    for line in data.problems + (calib.problems if calib else []):
        print(line, file=sys.stderr)
    if not data.samples:
        print(f"error: no image of {root} (split {split}) has a box with a known class", file=sys.stderr)
        return 2
    start = time.perf_counter()
    calibration = None
    if calib is not None:
        tuned = calibrate(calib.samples, model, params)
        for name, c in tuned.items():
            params[name][c["param"]] = c["chosen"]
            print(f"calibrated {name}: {c['param']} = {c['chosen']:g} (default {c['default']}) "
                  f"on {c['n_images']} images")
        source = (f"the calib split of {root.name} (even positions of its image list)" if args.calibrate == ""
                  else f"all of {Path(args.calibrate).name}")
        calibration = {"source": source, "metric": "gt_known_loc", "methods": tuned}
    for name in methods:  # record the values used, defaults included, so results.json describes the run
        tuned_param = get_method(name).tuned()
        if tuned_param:
            params[name].setdefault(tuned_param.name, tuned_param.default_for(model.imagenet))
    outcomes = evaluate(data.samples, model, params)
    if not next(iter(outcomes.values())):
        print("error: no photo could be read", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = build_results(root.name, model.name, split, outcomes, params, calibration,
                            _command(args, methods, split))
    write_reports(results, outcomes, out)
    write_plots(results, outcomes, out, args.sheet, model.class_names)
    print(markdown_table(results), end="")
    print("\nGT-known Loc by kind of photo:\n" + kinds_table(results), end="")
    print("\nPaired comparisons (p: exact McNemar):\n" + comparisons_table(results), end="")
    print(f"{results['n_images']} images in {time.perf_counter() - start:.0f} s; results in {out}")
    return 0
