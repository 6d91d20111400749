"""The Dataset map tab: a t-SNE map of uploaded images or of a pre-labeling project, and a scatter to explore
it; clicking an image of a project opens it in the Review tab."""

from __future__ import annotations

import base64
import html
import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .. import tsne
from ..bootstrap.project import Review
from ..draw import hex_colour
from ..errors import one_line
from ..images import IMAGE_SUFFIXES, load_image
from ..labelmap import LabelMap
from ..models import load_model
from ..paths import UnsafePathError, extract_zip
from ..tsne import LEGEND_ENTRIES, NO_LABEL_COLOUR, DatasetMap, MapError, Opener
from . import review

SOURCES = ["Upload", "Pre-labeling project"]
REVIEW_REJECTED = "(rejected)"
REVIEW_NO_OBJECT = "(accepted: no object)"


@dataclass
class MapView:
    """What the tab shows after making a map."""

    picture: Path
    """The map PNG (also offered for download)."""
    table: Any
    """The scatter's rows (a pandas DataFrame, see scatter_table)."""
    colours: dict[str, str]
    summary: str
    state: dict
    """{"map": DatasetMap, "size": picture side, "project": folder or None}, kept per session."""
    csv: Path


def make_map(source: str, uploads: Sequence[str] | None, root: str | Path, project: str | None, model_name: str,
             limit: int, workdir: str, progress: bool = True) -> MapView:
    """Features, t-SNE, the picture and the scatter for the uploaded images or a pre-labeling project."""
    folder, notes = None, []
    if source == SOURCES[1]:
        if not project:
            raise review.ProjectError("No pre-labeling project yet: pre-label a folder first (Pre-label tab).")
        folder = str(review.existing_project(root, project))
        names, opener, label_map = project_images(folder)
        decided = review_labels(folder)
    else:
        if not uploads:
            raise MapError("Upload a folder, some images or a zip of them first.")
        names, opener, label_map = [str(p) for p in collect_uploads(uploads, workdir, notes)], None, None
        decided = None
    model = load_model(model_name)
    if label_map is not None and not label_map.fits(model):
        notes.append(f"the project's labels name another model's classes: the frames show {Path(model.name).name}'s "
                     "predicted class (pick the model the project was pre-labeled with to see its labels)")
        label_map = None
    dmap = tsne.build_map(names[: int(limit)], model, label_map, opener=opener, progress=progress, decided=decided)
    size = tsne.auto_size(len(dmap))
    png, csv_path = Path(workdir) / "dataset-map.png", Path(workdir) / "dataset-map.csv"
    tsne.render_map(dmap, size).save(png)
    tsne.write_csv(dmap, csv_path)
    left_out = "; ".join(html.escape(x) for x in dmap.skipped[:5])
    skipped = f"  \n{len(dmap.skipped)} unreadable file(s) left out: {left_out}" if dmap.skipped else ""
    skipped += "".join(f"  \n⚠️ {html.escape(n)}" for n in notes[:5])
    where = ". Clicking one also opens it in the **Review** tab" if folder else ""
    summary = (f"**{len(dmap)} images** mapped in {sum(dmap.seconds.values()):.0f} s, framed by {dmap.colour_by}{where}. "
               f"Click a thumbnail, or brush across the scatter, to see an image.{skipped}")
    state = {"map": dmap, "size": size, "project": folder}
    return MapView(png, scatter_table(dmap), scatter_colours(dmap), summary, state, csv_path)


def point_at(state: dict | None, x: float, y: float) -> int | None:
    """The image whose thumbnail is at (x, y) of the map picture."""
    return tsne.image_at(state["map"], x, y, state["size"]) if state else None


def show_point(state: dict, index: int) -> tuple[Image.Image, str]:
    """The photo behind a point and its line."""
    return open_point(state["map"], index, state["project"]), describe_point(state["map"], index)


def band(state: dict | None, x0: float, x1: float) -> tuple[list[tuple[Image.Image, str]], list[int]]:
    """The thumbnails (with labels) and indices of the images in a brushed band of the scatter."""
    if not state:
        return [], []
    dmap = state["map"]
    picked = in_x_range(dmap, x0, x1)
    return [(dmap.thumbnails[i], dmap.labels[i]) for i in picked], picked


def collect_uploads(files: Sequence[str | Path], workdir: str | Path, notes: list[str] | None = None) -> list[Path]:
    """The images among uploaded files (a folder upload arrives as its files) and inside uploaded zips,
    which are extracted into `workdir` with the bootstrap's zip-slip and zip-bomb guards; what a zip could
    not give goes to `notes`, one line each."""
    out: list[Path] = []
    for i, name in enumerate(files):
        path = Path(name)
        if path.suffix.lower() == ".zip":
            try:
                done = extract_zip(path, Path(workdir) / f"zip-{i}", set(IMAGE_SUFFIXES))
                out += sorted(done.files)
                if notes is not None:
                    notes += done.skipped
            except UnsafePathError as exc:
                raise MapError(one_line(exc)) from None
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            out.append(path)
    if not out:
        raise MapError(f"no image files among the uploads ({', '.join(sorted(IMAGE_SUFFIXES))}, or a zip of them)")
    return out


def project_images(folder: str | Path) -> tuple[list[str], Opener, LabelMap | None]:
    """A bootstrap project's images by file name (as its review queue names them), how to open one by that
    name, and the project's user label map (None when it labels with ImageNet's names)."""
    project = review.get_project(folder)
    label_map = project.label_map
    return list(project.file_names().values()), project.open, label_map if label_map.spec else None


def review_labels(folder: str | Path) -> dict[str, str]:
    """What the reviewer decided, by file name: an accepted image's most frequent box label (REVIEW_NO_OBJECT
    for one accepted without a box), REVIEW_REJECTED for a rejected one; pending images are not in it."""
    decided = {}
    for rec in review.get_project(folder).images():
        if rec.review == Review.REJECTED:
            decided[rec.file_name] = REVIEW_REJECTED
        elif rec.review == Review.ACCEPTED:
            labels = Counter(b.label for b in rec.boxes or [])
            decided[rec.file_name] = labels.most_common(1)[0][0] if labels else REVIEW_NO_OBJECT
    return decided


def project_model(root: str | Path, name: str | None) -> str | None:
    """The model the project called `name` was last pre-labeled with (None: not known, or no such project)."""
    try:
        project = review.get_project(review.existing_project(root, name))
    except review.ProjectError:
        return None
    return (project.meta("settings") or {}).get("model")


def review_at(folder: str | Path, name: str, session: dict | None = None) -> dict:
    """A review session (the Review tab's) positioned at the image called `name`: the user's own session when it
    is on this project and holds the image, else a new one over all the project's pre-labeled images.

    Raises ProjectError when the image is not in the queue (not pre-labeled yet)."""
    if session and Path(session["project"]).resolve() == Path(folder).resolve():
        try:
            return review.jump(session, name)
        except review.ProjectError:
            pass
    order = session["order"] if session else "confidence"
    try:
        return review.jump(review.start(folder, order, "all"), name)
    except review.ProjectError:
        raise review.ProjectError(f"{name} is not in the review queue yet: pre-label it first") from None


def thumbnail_uri(image: Image.Image, side: int = 48) -> str:
    """A small JPEG as a data: URI, which the scatter's hover shows as a picture."""
    small = image.copy()
    small.thumbnail((side, side))
    buf = io.BytesIO()
    small.save(buf, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def scatter_table(dmap: DatasetMap, groups: int = LEGEND_ENTRIES):
    """One row per image for an interactive scatter (a pandas DataFrame): x, y, `group` (the label, or "other"
    beyond the `groups` most frequent, so the legend stays readable), and what hovering shows: `image`, a
    thumbnail as a data: URI (Vega's tooltip draws a field called "image" as a picture), `name` and `label`."""
    import pandas as pd

    top = {lab for lab, _, _ in dmap.legend(groups)}
    return pd.DataFrame({
        "x": dmap.xy[:, 0].astype(float).round(2), "y": dmap.xy[:, 1].astype(float).round(2),
        "group": [lab if lab in top else "other" for lab in dmap.labels],
        "image": [thumbnail_uri(t) for t in dmap.thumbnails], "name": [Path(p).name for p in dmap.paths],
        "label": dmap.labels, "probability": dmap.probability.astype(float).round(3),
    })


def scatter_colours(dmap: DatasetMap, groups: int = LEGEND_ENTRIES) -> dict[str, str]:
    """The scatter's colour per group, the same as the frames and the legend in the picture ("other": grey)."""
    colours = {lab: hex_colour(c) for lab, c, _ in dmap.legend(groups)}
    return {**colours, "other": hex_colour(NO_LABEL_COLOUR)}


def in_x_range(dmap: DatasetMap, x0: float, x1: float, most: int = 60) -> list[int]:
    """The images inside a band of the scatter's x axis (what a brush selects there), top to bottom."""
    lo, hi = sorted((x0, x1))
    inside = np.flatnonzero((dmap.xy[:, 0] >= lo) & (dmap.xy[:, 0] <= hi))
    return [int(i) for i in inside[np.argsort(-dmap.xy[inside, 1])][:most]]


def open_point(dmap: DatasetMap, index: int, project: str | Path | None = None) -> Image.Image:
    """The full image behind a point: from its path, or from the bootstrap project the map was made of."""
    if project is not None:
        return review.get_project(project).open(dmap.paths[index])
    return load_image(dmap.paths[index])


def describe_point(dmap: DatasetMap, index: int) -> str:
    """One image's line (Markdown): its name, its label and probability, and the classifier's top-1 class."""
    top1 = load_model(dmap.model).class_names[int(dmap.class_index[index])]
    why = "" if top1 == dmap.labels[index] else f" · top-1 class: *{top1}*"
    return f"**{Path(dmap.paths[index]).name}** · {dmap.labels[index]} ({dmap.probability[index]:.2f}){why}"


