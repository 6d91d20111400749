"""The Review tab: a project's queue, one image at a time, every decision saved at once, and its export.

A review session is a small JSON-able dict (kept per browser tab in gr.State): the project folder,
the order of the queue and the position in it. Projects are opened once per process; which ones a session
may open is its projects root's business (webapp.Access).
The annotator works on a display copy of the photo (fol_core.annotator); a box the reviewer left
untouched keeps its exact proposed coordinates.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from ..annotator import display_copy, display_scale, from_annotator, to_annotator
from ..bootstrap.export import ExportError, export_all, zip_export
from ..bootstrap.project import MARKER, Action, ImageRecord, Project, ProjectError, Status, open_project
from ..paths import relative_parts

ORDERS = (("Least sure first", "confidence"), ("By file name", "name"))
"""Queue orders: least sure first, or by file name."""
SHOWN = ("pending", "all", Status.ACCEPTED.value, Status.REJECTED.value)
"""Which images a queue shows: pending, all reviewable ones, or those with one decision."""
FORMATS = (("Pascal VOC", "voc"), ("COCO JSON", "coco"), ("YOLO", "yolo"), ("Hugging Face datasets", "hf"))
MAX_LABEL_LIST = 200
"""Offer the map's labels as the annotator's choices when there are at most this many."""

_PROJECTS: dict[str, Project] = {}
_LOCK = threading.Lock()


def get_project(folder: str | Path) -> Project:
    """The project in `folder`, opened once per process and shared by every session."""
    key = str(Path(folder).resolve())
    with _LOCK:
        if key not in _PROJECTS:
            _PROJECTS[key] = open_project(key)
        return _PROJECTS[key]


def forget(folder: str | Path) -> None:
    """Drop the shared Project for folder (after a run made or restarted it), so the next call reopens it."""
    with _LOCK:
        _PROJECTS.pop(str(Path(folder).resolve()), None)


def forget_under(root: str | Path) -> None:
    """Close and drop every shared Project inside root (a session's projects folder about to be removed)."""
    base = Path(root).resolve()
    with _LOCK:
        for key in [k for k in _PROJECTS if base in Path(k).parents]:
            _PROJECTS.pop(key).close()


def existing_project(root: str | Path, name: str | None) -> Path:
    """root/NAME for a project listed under root; any other name (a path, another session's project) is refused."""
    if not name:
        raise ProjectError("Pre-label a folder first, or pick a project.")
    if name not in list_projects(root):
        raise ProjectError(f"no project called {name!r} here: pre-label one first, or pick one from the list (↻)")
    return Path(root) / name


def project_folder(root: str | Path, name: str) -> Path:
    """root/NAME for a project name the user typed: one safe folder name, never a path elsewhere."""
    parts = relative_parts(name or "")
    if not parts:
        raise ProjectError("give the project a name (letters, digits, spaces)")
    return Path(root) / "-".join(parts)


def label_choices(project: Project) -> list[str]:
    """The labels offered when editing a box: the user's map's labels (ImageNet's 1000 names are too many)."""
    lm = project.label_map
    return lm.names if lm.spec and len(lm.names) <= MAX_LABEL_LIST else []


def list_projects(root: str | Path) -> list[str]:
    """The project folders directly under root (e.g. exports/), by name."""
    base = Path(root)
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / MARKER).is_file())


def start(folder: str | Path, order: str = "confidence", status: str = "pending") -> dict:
    """A review session on the project's queue (raises ProjectError when the folder is not a project)."""
    project = get_project(folder)
    if order not in dict(ORDERS).values() or status not in SHOWN:
        raise ProjectError(f"order is one of {', '.join(v for _, v in ORDERS)}, status one of {', '.join(SHOWN)}")
    ids = project.queue(order, status)
    return {"project": str(project.folder), "order": order, "status": status, "ids": ids, "pos": 0}


def _clamp(state: dict, pos: int) -> dict:
    n = len(state["ids"])
    return {**state, "pos": max(0, min(pos, n - 1)) if n else 0}


def move(state: dict, step: int) -> dict:
    """Next (+1) or previous (-1) image in the queue."""
    return _clamp(state, state["pos"] + step)


def jump(state: dict, target: str | int) -> dict:
    """Go to an image by its position in the queue (1-based) or by (part of) its file name."""
    text = str(target).strip()
    if text.isdigit():
        return _clamp(state, int(text) - 1)
    project = get_project(state["project"])
    names = {i: project.image(i).file_name for i in state["ids"]}
    hits = [pos for pos, i in enumerate(state["ids"]) if names[i] == text] or [
        pos for pos, i in enumerate(state["ids"]) if text.lower() in names[i].lower()
    ]
    if not hits:
        raise ProjectError(f"no image in this queue is called {text!r}")
    return _clamp(state, hits[0])


@dataclass
class View:
    """What the review tab shows for the current image."""

    record: ImageRecord | None
    annotator: dict | None
    """{"image": display copy, "boxes": [...]} for image_annotator; None when the queue is empty."""
    scale: float
    info: str
    counts: dict[str, int]
    position: str


def current(state: dict) -> View:
    """The image at the session's position, its boxes in display pixels, and the counts."""
    project = get_project(state["project"])
    counts = project.counts()
    if not state["ids"]:
        return View(None, None, 1.0, "Nothing to review in this queue.", counts, "0 / 0")
    rec = project.image(state["ids"][state["pos"]])
    photo = project.source().open(rec.key)
    shown, scale = display_copy(photo)
    boxes = rec.current_boxes()
    return View(
        rec, {"image": shown, "boxes": to_annotator(boxes, scale)}, scale, describe(rec), counts,
        f"{state['pos'] + 1} / {len(state['ids'])}",
    )


def describe(rec: ImageRecord) -> str:
    """A short Markdown note: the file, its status, the pre-labeler's view of it."""
    lines = [f"**{rec.file_name}** ({rec.width} × {rec.height}) · status **{rec.status}**"]
    if rec.image_label:
        lines.append(f"image label: *{rec.image_label}*")
    if rec.stage == "no_object":
        lines.append("pre-labeler: **no object found** (no label scored enough); draw a box and accept, or reject")
    elif rec.confidence is not None:
        lines.append(f"pre-labeler confidence: {rec.confidence:.2f}")
    if rec.label_scores:
        best = sorted(rec.label_scores.items(), key=lambda kv: -kv[1])[:3]
        lines.append("label scores: " + ", ".join(f"{k} {v:.2f}" for k, v in best))
    return "  \n".join(lines)


def decide(state: dict, action: str, annotated: dict | None = None, advance: bool = True) -> dict:
    """Save a decision on the current image at once (accept takes the annotator's boxes), then move on."""
    if not state["ids"]:
        raise ProjectError("nothing to review in this queue")
    project = get_project(state["project"])
    rec = project.image(state["ids"][state["pos"]])
    boxes = None
    if action == Action.ACCEPT:
        scale = display_scale(rec.width, rec.height)
        dicts = (annotated or {}).get("boxes") or []
        shown = rec.current_boxes()
        default = shown[0].label if shown else rec.image_label or "object"
        boxes = from_annotator(dicts, scale, rec.width or 0, rec.height or 0, shown, default, "review")
    project.decide(rec.id, action, boxes)
    return move(state, 1) if advance else state


def counts_line(counts: dict[str, int]) -> str:
    extra = f" · {counts['new']} not pre-labeled" if counts.get("new") else ""
    return (f"**{counts['accepted']}** accepted · **{counts['pending']}** pending · "
            f"**{counts['rejected']}** rejected · {counts['no_object']} with no object found{extra}")


def open_queue(root: str | Path, name: str | None, order: str, status: str) -> dict:
    """A review session on the project called `name` under root."""
    return start(existing_project(root, name), order, status)


def need(state: dict | None) -> dict:
    """The session, or a message that a project must be opened first."""
    if not state:
        raise ProjectError("Open a project first.")
    return state


def export(state: dict | None, formats: list[str], include_proposals: bool, overwrite: bool,
           downloads: str | Path) -> tuple[str, list[str]]:
    """Write the chosen formats into the project's folder and zip each into `downloads`: (note, zip paths)."""
    project = get_project(need(state)["project"])
    if not formats:
        raise ExportError("Choose at least one format.")
    folders = export_all(project, formats, include_proposals=include_proposals, overwrite=overwrite)
    files = [str(zip_export(path, downloads)) for path in folders.values()]
    n = len(project.annotated(include_proposals))
    return f"Exported {n} images to " + ", ".join(f"`{p}`" for p in folders.values()), files

