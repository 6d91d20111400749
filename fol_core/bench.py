"""`bench`: median seconds per image of each method on real photos, at the model's resolution."""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from tqdm import tqdm

from .cli import add_model_arguments, whole
from .engine import localize
from .errors import UserError
from .images import image_files, load_image
from .methods import DEFAULT_METHOD, METHODS
from .models import Classifier, load_model

HELP = "time each method (and its declared variants, e.g. fol's reference schedule) per image on real photos"

DEV_SET = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "imagenet-val-dev" / "JPEGImages"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"



def runs(model: Classifier) -> dict[str, tuple[str, dict]]:
    """Every method that runs on the model, with its defaults, then each method's declared bench variants."""
    usable = {name: m for name, m in METHODS.items() if not m.unavailable(model)}
    return {**{name: (name, {}) for name in usable},
            **{run: (name, params) for name, m in usable.items() for run, params in m.bench_runs.items()}}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--images", default=None, help="folder of photos (default: the dev set, else examples/)")
    parser.add_argument("--limit", type=whole(1), default=20, help="photos to time (default: %(default)s)")
    parser.add_argument("--json", default=None, help="write the figures to this JSON file")


def photos(folder: str | None, limit: int) -> list[Path]:
    """The first `limit` photos of the folder (default: the dev set, else the examples); UserError if none."""
    root = Path(folder) if folder else (DEV_SET if DEV_SET.is_dir() else EXAMPLES)
    files = image_files(root)[:limit]
    if not files:
        raise UserError(f"{root}: {'no image files' if root.is_dir() else 'no such folder'}")
    return files


def run(args: argparse.Namespace) -> int:
    files = photos(args.images, args.limit)
    model = load_model(args.model, args.weights)
    images = [load_image(f) for f in files]
    plan = runs(model)
    localize(images[0], model, DEFAULT_METHOD)  # warm-up: first-call allocations are not the method's cost
    report: dict = {"model": model.name, "images": len(images), "threads": torch.get_num_threads()}
    for key, (method, params) in plan.items():
        times = []
        for img in tqdm(images, desc=key, unit="img", leave=False):
            start = time.perf_counter()
            localize(img, model, method, **params)
            times.append(time.perf_counter() - start)
        report[key] = {"s_per_image": round(statistics.median(times), 4)}
    print(f"{len(images)} photos from {files[0].parent}, model {model.name}, {report['threads']} threads")
    for key in plan:
        print(f"  {key:<14} {report[key]['s_per_image']:.3f} s/image (median)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1), encoding="utf-8")
    return 0
