"""`localize`: boxes, an overlay PNG and a JSON file for each photo."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from .cli import add_model_arguments
from .draw import explain_figure, overlay
from .imagenet import UnknownClassError
from .images import ImageError, load_image
from .localize import localize
from .methods import METHODS
from .models import ModelUnavailableError, load_model

HELP = "localize objects in photos: an overlay PNG and a JSON of boxes per photo"


def add_method_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", default="fol", choices=list(METHODS), help="default: %(default)s")
    parser.add_argument("--k", type=int, default=None, help="FOL: blobs in the union (default 5)")
    parser.add_argument("--kmax", type=int, default=None, help="FOL: neurons ranked (default 10)")
    parser.add_argument("--percentile", type=float, default=None, help="FOL: threshold percentile of a neuron's map")
    parser.add_argument("--layer", default=None, help="conv layer (module path); default from the model registry")
    parser.add_argument("--threshold", default=None, help="Grad-CAM/CAM: fraction of the maximum, or 'otsu'")


def method_params(args: argparse.Namespace) -> dict:
    """The method parameters the user set (the rest keep the method's defaults)."""
    names = {"fol": ("k", "kmax", "percentile", "layer"), "gradcam": ("layer", "threshold"), "cam": ("layer", "threshold")}
    params = {n: getattr(args, n) for n in names[args.method] if getattr(args, n, None) is not None}
    if "threshold" in params and params["threshold"] != "otsu":
        params["threshold"] = float(params["threshold"])
    return params


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", help="image files")
    add_model_arguments(parser)
    add_method_arguments(parser)
    parser.add_argument("--classes", nargs="+", default=None, help="classes to find (names, synonyms or indices)")
    parser.add_argument("--topn", type=int, default=1, help="localize up to N top classes (Algorithm 2)")
    parser.add_argument("--out", default="exports", help="output folder (default: %(default)s)")
    parser.add_argument("--explain", action="store_true", help="also save the explanation figure")


def _unique_stem(path: Path, taken: set[str]) -> str:
    stem, n = path.stem, 1
    while stem in taken:
        n += 1
        stem = f"{path.stem}-{n}"
    taken.add(stem)
    return stem


def run(args: argparse.Namespace) -> int:
    try:
        model = load_model(args.model, args.weights)
    except ModelUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    params = method_params(args)
    failed, taken = 0, set()
    for name in tqdm(args.images, desc="localize", unit="img", disable=len(args.images) < 2):
        path = Path(name)
        try:
            photo = load_image(path)
            result = localize(photo, model, args.method, classes=args.classes, topn=args.topn, **params)
        except (ImageError, UnknownClassError, ValueError) as exc:
            tqdm.write(f"skipped {name}: {exc}", file=sys.stderr)
            failed += 1
            continue
        result.image = str(path)
        stem = _unique_stem(path, taken)
        overlay(photo, result).save(out / f"{stem}.overlay.png")
        if args.explain:
            explain_figure(photo, result).save(out / f"{stem}.explain.png")
        (out / f"{stem}.json").write_text(json.dumps(result.to_json(), indent=1), encoding="utf-8")
        labels = ", ".join(f"{b.label} ({b.score:.2f})" for b in result.boxes) or "no box"
        tqdm.write(f"{name}: {labels} in {result.seconds:.2f}s")
    if failed:
        print(f"{failed} of {len(args.images)} images failed", file=sys.stderr)
    return 1 if failed else 0
