"""`tsne`: a map of an image collection from the classifier's own features, to see what is in it.

Pooled penultimate features -> L2 normalisation -> PCA to about 50 dimensions -> 2-D t-SNE
(scikit-learn, fixed seed). The map is a large PNG with every image's thumbnail at its place,
framed in the colour of its predicted class (or of its user label), plus a CSV of the coordinates.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps
from PIL import Image, ImageDraw
from tqdm import tqdm

from .draw import fit_text, font, wrap_text
from .errors import UserError, about, one_line
from .imagenet import classes
from .images import IMAGE_SUFFIXES, image_files, load_image
from .labelmap import LabelMap, load_label_map
from .methods.base import class_probs
from .models import Classifier

HELP = "a t-SNE map of a folder of images from the classifier's features: a PNG of thumbnails and a CSV"

MIN_IMAGES = 3
"""t-SNE needs several points: with fewer there is nothing to arrange."""
PCA_DIMS = 50
"""PCA first, as scikit-learn advises for t-SNE: it removes noise and makes the neighbour search fast."""
SEED = 0
"""Fixed random state of PCA and t-SNE. With t-SNE's PCA initialisation the layout hardly depends on it (only
the randomized SVD inside uses it), but fixing it makes every run on the same images give the same map."""
BATCH = 8
"""Images per forward pass. Measured here: larger batches save little compute on the CPU but spend more in the
kernel (their big activation buffers are page-faulted in afresh each time): batch 32 cost about 40 ms per image
in system time, batch 8 about 10, batch 1 none, while user time per image was about the same."""
THUMB = 64
"""Thumbnail side in the map, pixels."""
NO_LABEL = "(no label)"
"""An image whose best user label scores below the label map's threshold."""
NO_LABEL_COLOUR = (150, 150, 150)
"""Grey: an image with no label, or with a label beyond the legend's."""


def _rgb(colour: Sequence[float]) -> tuple[int, int, int]:
    r, g, b = (round(255 * v) for v in colour[:3])
    return r, g, b


LEGEND_COLOURS = (*(_rgb(c) for c in colormaps["tab10"].colors if _rgb(c) != (127, 127, 127)),
                  *(_rgb(colormaps["tab20"].colors[i]) for i in (1, 3, 5)))
"""The most frequent labels' colours, in turn: matplotlib's tab10 (made to be told apart) without its grey, which
means "no label or another label" here, then tab20's light blue, orange and green. Hashed per-class colours looked
alike; more than a dozen hues cannot be told apart on a thumbnail's frame."""
LEGEND_ENTRIES = len(LEGEND_COLOURS)
CSV_FIELDS = ("path", "x", "y", "class_index", "label", "probability")

Opener = Callable[[str], Image.Image]
"""Opens one image by its name (a path, or a key of a bootstrap project's source) as upright RGB."""


class MapError(UserError):
    """A collection that cannot be mapped; the message is one line for the user."""


@dataclass
class DatasetMap:
    """Every mapped image with its 2-D place, its top-1 ImageNet class and the label it is coloured by."""

    paths: list[str]
    xy: np.ndarray
    """(N, 2) t-SNE coordinates."""
    class_index: np.ndarray
    """(N,) top-1 ImageNet class."""
    labels: list[str]
    """The predicted class's name, or the user label when a label map is given; a reviewer's where one decided."""
    probability: np.ndarray
    """(N,) probability of `labels` (a user label's is the sum over its classes)."""
    colours: list[tuple[int, int, int]]
    thumbnails: list[Image.Image]
    model: str
    """The model's name as load_model takes it (a trained model's folder: only its name is drawn)."""
    colour_by: str = "predicted class"
    """What the frame colours mean: "predicted class" or "predicted user label" (the model's, through the label map),
    with "the review's label where decided" before it when a reviewer decided some."""
    skipped: list[str] = field(default_factory=list)
    """One line per file that could not be read."""
    seconds: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.paths)

    def rows(self) -> list[dict]:
        """The CSV's rows: path, x, y, class_index, label, probability."""
        return [
            {"path": p, "x": round(float(x), 4), "y": round(float(y), 4), "class_index": int(c), "label": lab,
             "probability": round(float(pr), 4)}
            for p, (x, y), c, lab, pr in zip(self.paths, self.xy, self.class_index, self.labels, self.probability)
        ]

    def legend(self, entries: int = LEGEND_ENTRIES) -> list[tuple[str, tuple[int, int, int], int]]:
        """The most frequent labels with their colour and count, most frequent first."""
        colour_of = dict(zip(self.labels, self.colours))
        return [(lab, colour_of[lab], n) for lab, n in Counter(self.labels).most_common(entries)]


# --- features, embedding, labels ---------------------------------------------------------------------


def find_images(root: str | Path, limit: int | None = None) -> list[Path]:
    """The image files under `root` (images.image_files); the first `limit` of them."""
    root = Path(root)
    if not root.is_dir():
        raise MapError(f"{root}: no such folder")
    paths = image_files(root)
    if not paths:
        raise MapError(f"{root}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) found")
    return paths[:limit] if limit else paths


@dataclass
class _Features:
    paths: list[str]
    features: np.ndarray
    probs: np.ndarray
    thumbnails: list[Image.Image]
    skipped: list[str]


def extract_features(paths: Sequence[str | Path], model: Classifier, batch_size: int = BATCH, thumb: int = THUMB,
                     progress: bool = True, opener: Opener | None = None) -> _Features:
    """Pooled penultimate features and class probabilities, batch by batch; unreadable files are skipped.

    `opener` reads one image (default: load_image on a path)."""
    open_image = opener or load_image
    feats: list[np.ndarray] = []
    probs: list[np.ndarray] = []
    kept: list[str] = []
    thumbs: list[Image.Image] = []
    skipped: list[str] = []
    with tqdm(total=len(paths), desc="features", unit="img", disable=not progress) as bar:
        for start in range(0, len(paths), batch_size):
            batch: list[torch.Tensor] = []
            for path in paths[start:start + batch_size]:
                try:
                    image = open_image(path)
                except (UserError, OSError, ValueError) as exc:  # unreadable, gone from a project's source, ...
                    why = f"{path}: {exc.strerror}" if isinstance(exc, OSError) and exc.strerror else about(path, exc)
                    skipped.append(why)
                    bar.write(f"skipped {why}", file=sys.stderr)
                    continue
                batch.append(model.to_pixels(image))
                kept.append(str(path))
                image.thumbnail((thumb, thumb), Image.Resampling.BILINEAR)
                thumbs.append(image)
            if batch:
                pooled, logits = model.features(torch.cat(batch))
                feats.append(pooled.float().numpy())
                probs.append(class_probs(logits.float(), model.multilabel).numpy())
            bar.update(min(batch_size, len(paths) - start))
    empty = np.zeros((0, 0), np.float32)
    return _Features(kept, np.concatenate(feats) if feats else empty, np.concatenate(probs) if probs else empty,
                     thumbs, skipped)


def embed(features: np.ndarray, max_iter: int = 1000) -> np.ndarray:
    """(N, D) features -> (N, 2) t-SNE coordinates; the same features always give the same coordinates.

    Features are L2-normalised first, so distances compare what the network sees rather than how
    strongly it fires. Perplexity is 30 (scikit-learn's default) but at most (N - 1) / 3, so small
    collections still have a valid neighbourhood size. `max_iter` >= 250 (scikit-learn's minimum)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    n = len(features)
    if n < MIN_IMAGES:
        raise MapError(f"t-SNE needs at least {MIN_IMAGES} readable images; there are {n}")
    x = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    x = PCA(min(PCA_DIMS, n, x.shape[1]), random_state=SEED).fit_transform(x)
    perplexity = min(30.0, max(1.0, (n - 1) / 3))
    tsne = TSNE(2, perplexity=perplexity, init="pca", learning_rate="auto", max_iter=max_iter, random_state=SEED)
    return tsne.fit_transform(x).astype(np.float32)


def label_colours(labels: Sequence[str]) -> dict[str, tuple[int, int, int]]:
    """Each label's frame colour: the most frequent labels get LEGEND_COLOURS in turn (ties: first seen first),
    the others and NO_LABEL grey, so the legend's colours are distinct and every other frame is plainly "other"."""
    ranked = [lab for lab, _ in Counter(labels).most_common() if lab != NO_LABEL]
    return {lab: LEGEND_COLOURS[i] if i < len(LEGEND_COLOURS) else NO_LABEL_COLOUR for i, lab in enumerate(ranked)
            } | {NO_LABEL: NO_LABEL_COLOUR}


def assign_labels(probs: np.ndarray, label_map: LabelMap | None = None
                  ) -> tuple[list[str], np.ndarray, list[tuple[int, int, int]]]:
    """Per image: the label it is shown with, that label's probability, and its frame colour (label_colours).

    Without a map: the top-1 ImageNet class. With one: the best-scoring user label, or NO_LABEL when even
    the best is below the map's threshold, so that a weak guess is not dressed up as a label."""
    top = probs.argmax(1)
    if label_map is None:
        labels, prob = [classes()[int(c)].name for c in top], probs[np.arange(len(top)), top]
    else:
        scores = label_map.score_matrix(torch.from_numpy(probs)).numpy()
        best = scores.argmax(1)
        prob = scores[np.arange(len(best)), best]
        labels = [label_map.names[j] if s >= label_map.threshold else NO_LABEL for j, s in zip(best, prob)]
    colour_of = label_colours(labels)
    return labels, prob, [colour_of[lab] for lab in labels]


def build_map(paths: Sequence[str | Path], model: Classifier, label_map: LabelMap | None = None, max_iter: int = 1000,
              batch_size: int = BATCH, thumb: int = THUMB, progress: bool = True, opener: Opener | None = None,
              decided: Mapping[str, str] | None = None) -> DatasetMap:
    """Features, t-SNE and labels for these images (`decided`: the labels a reviewer gave some of them, by path, shown
    instead of the model's); raises MapError when too few of them can be read, or when the label map names another
    model's classes (checked before any work)."""
    if label_map is not None and not label_map.fits(model):
        kind = "a trained model's" if label_map.model_classes else "ImageNet's"
        raise MapError(f"the label map names {kind} classes, not those of {Path(model.name).name}: map without it")
    t0 = time.perf_counter()
    f = extract_features(paths, model, batch_size, thumb, progress, opener)
    t1 = time.perf_counter()
    if len(f.paths) < MIN_IMAGES:
        why = f" ({len(f.skipped)} unreadable)" if f.skipped else ""
        raise MapError(f"t-SNE needs at least {MIN_IMAGES} readable images; found {len(f.paths)}{why}")
    xy = embed(f.features, max_iter)
    t2 = time.perf_counter()
    if label_map is None and not model.imagenet:  # a trained model's labels are its classes
        label_map = LabelMap.for_classes(model.class_names)
    labels, prob, colours = assign_labels(f.probs, label_map)
    colour_by = "predicted user label" if label_map is not None else "predicted class"
    if decided and any(p in decided for p in f.paths):
        labels = [decided.get(p, lab) for p, lab in zip(f.paths, labels)]
        colour_of = label_colours(labels)
        colours, colour_by = [colour_of[lab] for lab in labels], f"the review's label where decided, else the {colour_by}"
    return DatasetMap(f.paths, xy, f.probs.argmax(1), labels, prob, colours, f.thumbnails, model.name, colour_by,
                      f.skipped, {"features": t1 - t0, "tsne": t2 - t1})


# --- picture ---------------------------------------------------------------------------------------


def auto_size(n: int, thumb: int = THUMB) -> int:
    """A map side that leaves room between thumbnails: 1.6 thumbnail widths times the square root of n."""
    return int(np.clip(math.sqrt(n) * thumb * 1.6, 800, 8000))


def layout(xy: np.ndarray, size: int, thumb: int = THUMB) -> np.ndarray:
    """(N, 2) integer top-left corners of the thumbnails' cells in a size x size plot area.

    A margin of thumb // 8 keeps the outermost frames inside the plot."""
    lo, hi = xy.min(0), xy.max(0)
    span = np.where(hi > lo, hi - lo, 1.0)
    unit = (xy - lo) / span
    unit[:, 1] = 1.0 - unit[:, 1]  # t-SNE's y grows upwards, the picture's downwards
    margin = thumb // 8
    return np.round(margin + unit * (size - thumb - 2 * margin)).astype(int)


def render_map(dmap: DatasetMap, size: int | None = None, thumb: int = THUMB, entries: int = LEGEND_ENTRIES
               ) -> Image.Image:
    """The map: a size x size plot of framed thumbnails and a legend column size // 3 wide on its right."""
    size = size or auto_size(len(dmap), thumb)
    legend_w = size // 3
    canvas = Image.new("RGB", (size + legend_w, size), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    frame = max(2, thumb // 16)
    for (x, y), tn, colour in zip(layout(dmap.xy, size, thumb), dmap.thumbnails, dmap.colours):
        if max(tn.size) > thumb:
            tn = tn.copy()
            tn.thumbnail((thumb, thumb))
        left, top = x + (thumb - tn.width) // 2, y + (thumb - tn.height) // 2
        canvas.paste(tn, (left, top))
        draw.rectangle([left - frame // 2, top - frame // 2, left + tn.width - 1 + frame // 2,
                        top + tn.height - 1 + frame // 2], outline=colour, width=frame)
    _draw_legend(draw, dmap, size, legend_w, entries)
    return canvas


def _draw_legend(draw: ImageDraw.ImageDraw, dmap: DatasetMap, size: int, width: int, entries: int) -> None:
    """The legend column right of the size x size plot; its text about 1/40 of the plot's side, so that it stays
    readable (~16 screen pixels) when the app shows the map 620 pixels high."""
    x0, fs = size, max(16, size // 40)
    big, small = font(fs), font(max(14, fs * 3 // 4))
    pad = fs // 2
    draw.rectangle([x0, 0, x0 + width - 1, size - 1], fill=(246, 246, 246))
    y = pad
    header = [(f"{len(dmap)} images", big), (fit_text(draw, f"model: {Path(dmap.model).name}", small, width - 2 * pad),
                                                small)]
    header += [(text, small) for text in wrap_text(draw, f"frame = {dmap.colour_by}", small, width - 2 * pad)]
    for text, f in header:
        draw.text((x0 + pad, y), text, fill=(0, 0, 0), font=f)
        y += int(f.size * 1.4)
    y += pad
    shown = dmap.legend(entries)
    for label, colour, n in shown:
        draw.rectangle([x0 + pad, y, x0 + pad + fs, y + fs], fill=colour)
        text = fit_text(draw, f"{label} ({n})", big, width - 3 * pad - fs)
        draw.text((x0 + 2 * pad + fs, y), text, fill=(0, 0, 0), font=big)
        y += int(fs * 1.5)
    rest = len(dmap) - sum(n for _, _, n in shown)
    if rest:
        others = len(set(dmap.labels)) - len(shown)
        text = fit_text(draw, f"+ {others} more, grey ({rest} images)", small, width - 2 * pad)
        draw.text((x0 + pad, y + pad), text, fill=(80, 80, 80), font=small)


def image_at(dmap: DatasetMap, px: float, py: float, size: int, thumb: int = THUMB) -> int | None:
    """The image under pixel (px, py) of a map rendered at `size`: the topmost thumbnail there, else the
    nearest one within a thumbnail's width; None when the click is on empty space or the legend."""
    corners = layout(dmap.xy, size, thumb)
    inside = np.flatnonzero((corners[:, 0] <= px) & (px < corners[:, 0] + thumb)
                            & (corners[:, 1] <= py) & (py < corners[:, 1] + thumb))
    if len(inside):
        return int(inside[-1])  # drawn last, so on top
    dist = np.hypot(corners[:, 0] + thumb / 2 - px, corners[:, 1] + thumb / 2 - py)
    best = int(dist.argmin())
    return best if dist[best] <= thumb else None


def write_csv(dmap: DatasetMap, path: str | Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(dmap.rows())


# --- command ---------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .cli import add_model_arguments, whole

    parser.add_argument("folder", help="folder of images (read recursively)")
    parser.add_argument("--out", default="exports/tsne/map.png", help="the map PNG, or a folder to write map.png "
                        "in; the CSV goes beside it with the same name (default: %(default)s)")
    parser.add_argument("--labels", default=None, help="user label map (YAML/JSON: {label: [ImageNet classes]})")
    parser.add_argument("--limit", type=whole(1), default=None, help="map only the first N images (sorted by path)")
    add_model_arguments(parser)
    parser.add_argument("--max-iter", type=whole(250), default=1000, help="t-SNE iterations, at least 250 "
                        "(default: %(default)s)")
    parser.add_argument("--size", type=whole(100), default=None, help="side of the plot in pixels (default: grows with "
                        "the number of images)")
    parser.add_argument("--thumb", type=whole(8), default=THUMB, help="thumbnail side in pixels (default: %(default)s)")
    parser.add_argument("--batch-size", type=whole(1), default=BATCH, help="images per forward pass (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    from .models import load_model

    out = Path(args.out)
    out = out if out.suffix.lower() == ".png" else out / "map.png"  # a folder, as other commands' --out
    try:
        out.parent.mkdir(parents=True, exist_ok=True)  # before the work: a folder that cannot be made stops it
        label_map = load_label_map(args.labels) if args.labels else None
        paths = find_images(args.folder, args.limit)
        model = load_model(args.model, args.weights)
        dmap = build_map(paths, model, label_map, args.max_iter, args.batch_size, args.thumb)
    except UserError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {about(str(out.parent), exc)}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    picture = render_map(dmap, args.size, args.thumb)
    try:
        picture.save(out)
        write_csv(dmap, out.with_suffix(".csv"))
    except OSError as exc:
        print(f"error: {about(str(out), exc)}", file=sys.stderr)
        return 2
    dmap.seconds["render"] = time.perf_counter() - t0
    times = ", ".join(f"{k} {v:.1f}s" for k, v in dmap.seconds.items())
    print(f"mapped {len(dmap)} images ({times}): {out} ({picture.width} x {picture.height}), "
          f"{out.with_suffix('.csv')}")
    if dmap.skipped:
        print(f"{len(dmap.skipped)} of {len(paths)} files could not be read and were left out", file=sys.stderr)
    return 1 if dmap.skipped else 0
