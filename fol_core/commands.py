"""`localize`: boxes, an overlay PNG and a JSON file for each photo."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from .cli import add_method_arguments, add_model_arguments, method_params, whole
from .draw import explain_figure, overlay
from .engine import ImageNetRequest, explain_photo
from .errors import UserError, about, one_line
from .images import image_files, load_image
from .methods import create_method
from .models import load_model
from .paths import flat_name

HELP = "localize objects in photos: an overlay PNG and a JSON of boxes per photo"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", help="image files or folders (every image under a folder)")
    add_model_arguments(parser)
    add_method_arguments(parser)
    parser.add_argument("--classes", nargs="+", default=None, help="classes to find (names, synonyms or indices)")
    parser.add_argument("--topn", type=whole(1), default=1, help="localize up to N top classes (Algorithm 2)")
    parser.add_argument("--out", default="exports", help="output folder (default: %(default)s)")
    parser.add_argument("--explain", action="store_true", help="also save the explanation figure")


def _unique_stem(path: Path, taken: set[str]) -> str:
    """The output files' stem: the photo's, made safe and short enough for "STEM.overlay.png" (a long name
    gets a hash), and unique in this run."""
    base = Path(flat_name(path.name)).stem
    stem, n = base, 1
    while stem in taken:
        n += 1
        stem = f"{base}-{n}"
    taken.add(stem)
    return stem


def photo_paths(names: list[str], out: Path) -> tuple[list[Path], list[str]]:
    """The photos to localize: each file named, and the image files under each folder named except those in
    `out` (a second run over the same folder must not localize the first run's overlays); one line for each
    folder that holds none."""
    paths, empty, own = [], [], out.resolve()
    for name in names:
        path = Path(name)
        if not path.is_dir():
            paths.append(path)
            continue
        found = [f for f in image_files(path) if not f.resolve().is_relative_to(own)]
        paths += found
        if not found:
            empty.append(f"{name}: a folder with no image files")
    return paths, empty


def run(args: argparse.Namespace) -> int:
    try:
        model = load_model(args.model, args.weights)
        method = create_method(args.method, model, **method_params(args, args.method))
        request = ImageNetRequest.of(args.classes, args.topn, model=model)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
    except UserError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {about(args.out, exc)}", file=sys.stderr)
        return 2
    paths, empty = photo_paths(args.images, out)
    for line in empty:
        print(f"skipped {line}", file=sys.stderr)
    total, failed, taken = len(paths) + len(empty), len(empty), set()
    for path in tqdm(paths, desc="localize", unit="img", disable=len(paths) < 2):
        name = str(path)
        try:
            photo = load_image(path)
            result = explain_photo(photo, method, request)
            result.image = str(path)
            stem = _unique_stem(path, taken)
            overlay(photo, result).save(out / f"{stem}.overlay.png", compress_level=1)  # 12 MP: 0.5 s, not 2
            if args.explain:
                explain_figure(photo, result).save(out / f"{stem}.explain.png")
            (out / f"{stem}.json").write_text(json.dumps(result.to_json(), indent=1), encoding="utf-8")
        except (UserError, OSError) as exc:  # one photo's problem: say so, and go on with the others
            tqdm.write(f"skipped {about(name, exc)}", file=sys.stderr)
            failed += 1
            continue
        labels = ", ".join(f"{b.label} ({b.score:.2f})" for b in result.boxes) or "no box"
        tqdm.write(f"{name}: {labels} in {result.seconds:.2f}s")
    done = total - failed
    print(f"wrote {done} overlay PNG and JSON file(s){' and explanations' if args.explain and done else ''} in {out}")
    if failed:
        print(f"{failed} of {total} inputs failed", file=sys.stderr)
    return 1 if failed else 0
