"""The Review tab: a project's queue, one image at a time, every decision saved at once, and its export.

A review session is a small JSON-able dict (kept per browser tab in gr.State): the project folder,
the order of the queue and the position in it. Projects are opened once per process; which ones a session
may open is its projects root's business (webapp.Access).
The annotator works on a display copy of the photo (fol_core.annotator); a box the reviewer left
untouched keeps its exact proposed coordinates.

The display copy is a file named after the image (its token), and the annotator sends that name back with
its boxes: a decision is refused when the canvas holds another image than the one the session is at, so
no image is ever decided unseen. The session also keeps the shown image's boxes (numbered "1: cat" on the
canvas, to match the side list), their edit history (undo within the image) and the journal rows of its
own decisions (undo across images).
"""

from __future__ import annotations

import contextlib
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from ..annotator import display_copy, display_scale, from_annotator, to_annotator
from ..bootstrap.export import ExportError, export_all, zip_export
from ..bootstrap.prelabel import Progress
from ..bootstrap.project import DB_NAME, MARKER, Action, ImageRecord, Project, ProjectError, Status, open_project
from ..errors import UserError, one_line
from ..paths import folder_name
from ..training.improve import improve
from . import workdir

ORDERS = (("Least sure first", "confidence"), ("By file name", "name"))
"""Queue orders: least sure first, or by file name."""
SHOWN = ("pending", "all", Status.ACCEPTED.value, Status.REJECTED.value)
"""Which images a queue shows: pending, all reviewable ones, or those with one decision."""
FORMATS = (("Pascal VOC", "voc"), ("COCO JSON", "coco"), ("YOLO", "yolo"), ("Hugging Face datasets", "hf"))
MAX_LABEL_LIST = 200
"""The most labels the annotator's own label dialog offers (the project's first ones)."""
LABEL_KEYS = 9
"""Keys 1-9 give the selected box the project's first nine labels."""
NEW_LABEL = "object"
"""What a drawn box is offered in a project that has no label yet."""
MAX_EDITS = 100
"""Box edits kept for undo within one image."""
NUMBERED = re.compile(r"^(\d+): ?")
"""The number the canvas shows before each box's label ("2: cat"), as the side list numbers it."""
SHORTCUTS = (("Enter / A", "accept"), ("R", "reject"), ("S", "skip"), ("→ / N", "next"), ("← / P", "previous"),
             ("Z", "undo the last box edit"), ("U", "undo the last decision"), ("B / Shift+B", "next / previous box"),
             ("1-9", "give the selected box that label"), ("Del", "delete the selected box"))
"""The Review tab's keyboard shortcuts (app.py's key handler binds the same keys)."""

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
    clean = folder_name(name)
    if not clean:
        raise ProjectError("give the project a name (letters, digits, spaces)")
    return Path(root) / clean


def label_choices(project: Project) -> list[str]:
    """The labels the annotator's own dialog offers for a box drawn on the canvas: the project's label set (the
    keys 1-9 give its first nine), at most MAX_LABEL_LIST of them, never none (the dialog fails on an empty list;
    the side panel's picker takes any label typed in)."""
    return label_set(project)[:MAX_LABEL_LIST] or [NEW_LABEL]


def list_projects(root: str | Path) -> list[str]:
    """The project folders directly under root (e.g. exports/), by name."""
    base = Path(root)
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / MARKER).is_file())


def newest_project(root: str | Path) -> str | None:
    """The project under root worked on last (its database written last): the one a user most likely comes back to."""
    def touched(name: str) -> float:
        times = []
        for file in (Path(root) / name).glob(f"{DB_NAME}*"):
            with contextlib.suppress(OSError):  # a project removed meanwhile
                times.append(file.stat().st_mtime)
        return max(times, default=0.0)
    return max(list_projects(root), key=touched, default=None)


def start(folder: str | Path, order: str = "confidence", status: str = "pending") -> dict:
    """A review session on the project's queue (raises ProjectError when the folder is not a project)."""
    project = get_project(folder)
    if order not in dict(ORDERS).values() or status not in SHOWN:
        raise ProjectError(f"order is one of {', '.join(v for _, v in ORDERS)}, status one of {', '.join(SHOWN)}")
    ids = project.queue(order, status)
    return {"project": str(project.folder), "order": order, "status": status, "ids": ids, "pos": 0}


def _clamp(state: dict, pos: int) -> dict:
    n = len(state["ids"])
    state = {k: v for k, v in state.items() if k != "seen"}  # the next image is seen when shown (enter)
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
    names = project.file_names()
    hits = [pos for pos, i in enumerate(state["ids"]) if names[i] == text] or [
        pos for pos, i in enumerate(state["ids"]) if text.lower() in names[i].lower()
    ]
    if not hits:
        wider = "" if state.get("status") == "all" else f" (it shows {state.get('status')} images: Show all to look among every one)"
        raise ProjectError(f"no image in this queue is called {text!r}{wider}")
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
    token: str = ""
    """The display copy's file name stem, which the annotator sends back (see check_shown)."""


def image_token(project: Project, image_id: int) -> str:
    """The name of an image's display copy: its project and id, so a stale canvas is never taken for another."""
    return f"{project.id[:8]}-{image_id}"


def current(state: dict) -> View:
    """The image at the session's position, its boxes in display pixels, and the counts.

    The display copy is written once per image into the session's display folder (state["display"], made
    here on first use) and handed to the annotator by path, its name being the image's token. An image that can
    no longer be read (its source moved or deleted) is shown as its reason, with no canvas to decide on: the
    queue goes on past it."""
    project = get_project(state["project"])
    counts = project.counts()
    if not state["ids"]:
        return View(None, None, 1.0, "Nothing to review in this queue.", counts, "0 / 0")
    rec = project.image(state["ids"][state["pos"]])
    token = image_token(project, rec.id)
    if not state.get("display"):
        state["display"] = workdir()
    path = Path(state["display"]) / f"{token}.jpg"
    position = f"{state['pos'] + 1} / {len(state['ids'])}"
    if path.is_file():
        scale = display_scale(rec.width or 0, rec.height or 0)
    else:
        try:
            shown, scale = display_copy(project.source().open(rec.key))
        except UserError as exc:
            return View(rec, None, 1.0, f"⚠️ {one_line(exc)}  \n{describe(rec)}", counts, position)  # no canvas
        shown.convert("RGB").save(path, quality=92)
    boxes = rec.current_boxes()
    return View(
        rec, {"image": str(path), "boxes": numbered(to_annotator(boxes, scale))}, scale, describe(rec), counts,
        position, token,
    )


def enter(state: dict, view: View) -> dict:
    """The session at the view's image: its boxes as shown, no edits yet, the first box selected; `unreadable` when
    the image could not be read (it may then be rejected or skipped with no canvas, never accepted)."""
    boxes = plain(view.annotator["boxes"]) if view.annotator else []
    unreadable = view.annotator is None and view.record is not None
    seen = view.record.review if view.record else None  # what a decision must find still there (decide)
    return {**state, "image": view.token, "boxes": boxes, "edits": [], "sel": 0, "unreadable": unreadable,
            "seen": seen}


def numbered(dicts: list[dict]) -> list[dict]:
    """The boxes with their side-list number before the label, as the canvas shows them."""
    return [{**d, "label": f"{i}: {_label(d)}"} for i, d in enumerate(dicts, 1)]


def _label(d: dict) -> str:
    return NUMBERED.sub("", str(d.get("label") or "")).strip()


def plain(dicts: list[dict] | None) -> list[dict]:
    """The annotator's boxes without the canvas numbers: label, rounded corners, colour."""
    out = []
    for d in dicts or []:
        x0, x1 = sorted((round(float(d["xmin"])), round(float(d["xmax"]))))
        y0, y1 = sorted((round(float(d["ymin"])), round(float(d["ymax"]))))
        colour = d.get("color")
        if isinstance(colour, (list, tuple)):
            colour = "rgb({}, {}, {})".format(*colour)
        out.append({"xmin": x0, "ymin": y0, "xmax": x1, "ymax": y1, "label": _label(d), "color": colour})
    return out


def shown_token(annotated: dict | None) -> str | None:
    """The token of the image the annotator holds (its file's stem), None when it holds none."""
    image = (annotated or {}).get("image")
    return Path(image).stem if isinstance(image, (str, Path)) and str(image) else None


def check_shown(state: dict, annotated: dict | None, drawn: str | None = None) -> None:
    """Refuse to act on a canvas that holds, or has drawn (`drawn`: the token of the photo the browser last
    drew, when the app can tell), another image than the session's current one."""
    project = get_project(state["project"])
    expected = image_token(project, state["ids"][state["pos"]])
    if shown_token(annotated) != expected or drawn not in (None, expected):
        raise ProjectError("The canvas has not caught up with this image yet: nothing was saved; look, then "
                           "decide again.")
    if (annotated or {}).get("orientation"):
        raise ProjectError("Rotated images cannot be saved: boxes are kept in the photo's own orientation.")


def box_choices(state: dict) -> list[tuple[str, int]]:
    """The side list: one entry per box of the shown image, numbered as on the canvas."""
    return [(f"{i}: {d['label'] or '(no label)'}", i - 1) for i, d in enumerate(state.get("boxes") or [], 1)]


def selected_label(state: dict) -> str | None:
    boxes = state.get("boxes") or []
    sel = state.get("sel", 0)
    return boxes[sel]["label"] or None if 0 <= sel < len(boxes) else None


def label_set(project: Project) -> list[str]:
    """The labels a box can be given: the project's labels, then the label map's names (free text is allowed too)."""
    lm = project.label_map
    return list(dict.fromkeys([*project.labels(), *(lm.names if lm.spec else [])]))


def key_labels(project: Project) -> str:
    """The labels keys 1-9 give, as a line for the UI."""
    names = label_set(project)[:LABEL_KEYS]
    return " · ".join(f"**{i}** {n}" for i, n in enumerate(names, 1)) if names else "no labels yet: type one"


def _order(incoming: list[dict], raw: list[dict], before: list[dict]) -> list[dict]:
    """Keep the side list's order: a box keeps its canvas number, or its place when only its label changed
    (the annotator's own dialog drops the number); new boxes go last (the annotator puts them first)."""
    keys = []
    for i, (d, r) in enumerate(zip(incoming, raw)):
        m = NUMBERED.match(str(r.get("label") or ""))
        if m:
            keys.append((0, int(m.group(1)), i))
            continue
        same = next((j for j, b in enumerate(before) if (b["xmin"], b["ymin"], b["xmax"], b["ymax"]) ==
                     (d["xmin"], d["ymin"], d["xmax"], d["ymax"])), None)
        keys.append((0, same + 1, i) if same is not None else (1, 0, i))
    return [incoming[i] for *_, i in sorted(keys)]


def edited(state: dict, annotated: dict | None) -> tuple[dict, bool]:
    """Take the annotator's boxes after the reviewer edited them on the canvas: (session, whether the canvas
    must be redrawn to renumber them). Values from a canvas that shows another image are ignored."""
    if not state or not state.get("ids") or shown_token(annotated) != state.get("image"):
        return state, False
    raw = list((annotated or {}).get("boxes") or [])
    if any(float(d["xmin"]) == float(d["xmax"]) or float(d["ymin"]) == float(d["ymax"]) for d in raw):
        return state, False  # a box being drawn (the mouse just went down): a redraw now would end the drag
    before = state.get("boxes") or []
    boxes = _order(plain(raw), raw, before)
    redraw = [d.get("label") for d in raw] != [d["label"] for d in numbered(boxes)]
    if boxes == before:
        return state, redraw
    if len(boxes) > len(before):  # a box was drawn: select it, to be labelled; the annotator's own label dialog
        return _with_boxes(state, boxes, len(boxes) - 1), False  # may be open, so renumber on the next edit
    return _with_boxes(state, boxes, state.get("sel", 0)), redraw


def _with_boxes(state: dict, boxes: list[dict], sel: int) -> dict:
    """The session with new boxes, the old ones kept for undo."""
    edits = [*state.get("edits", []), state.get("boxes") or []][-MAX_EDITS:]
    return {**state, "boxes": boxes, "edits": edits, "sel": max(0, min(sel, len(boxes) - 1))}


def annotator_value(state: dict) -> dict:
    """The annotator's value for the session's boxes (its image is the display copy already shown)."""
    return {"image": str(Path(state["display"]) / f"{state['image']}.jpg"), "boxes": numbered(state["boxes"])}


def select(state: dict, index: int | None) -> dict:
    """Select a box of the side list (what the label picker, the keys 1-9 and Delete act on)."""
    return state if index is None else {**state, "sel": int(index)}


def _box(state: dict, index: int | None) -> int:
    boxes = state.get("boxes") or []
    index = state.get("sel", 0) if index is None else int(index)
    if not 0 <= index < len(boxes):
        raise ProjectError("No box is selected: draw one, or pick one in the list.")
    return index


def relabel(state: dict, label: str | None, index: int | None = None) -> dict:
    """Give a box (the selected one by default) a label: one of the project's, or a new one typed in."""
    name = " ".join(str(label or "").split())
    if not name:
        raise ProjectError("Type or pick a label.")
    if NUMBERED.match(name):
        name = NUMBERED.sub("", name)
    i = _box(state, index)
    boxes = [dict(b) for b in state["boxes"]]
    if boxes[i]["label"] == name:
        return state
    boxes[i]["label"] = name
    return _with_boxes(state, boxes, i)


def label_key(state: dict, key: int) -> dict:
    """Key 1-9: give the selected box the project's label number `key`."""
    names = label_set(get_project(state["project"]))
    if not 1 <= int(key) <= min(LABEL_KEYS, len(names)):
        raise ProjectError(f"No label {key}: this project has {len(names)} (type a new one in the label box).")
    return relabel(state, names[int(key) - 1])


def delete_box(state: dict, index: int | None = None) -> dict:
    """Remove a box (the selected one by default)."""
    i = _box(state, index)
    return _with_boxes(state, [b for j, b in enumerate(state["boxes"]) if j != i], i)


def undo_edit(state: dict) -> dict:
    """Put the shown image's boxes back as they were before the last edit."""
    if not state.get("edits"):
        raise ProjectError("No box edit to undo on this image (U undoes the last decision).")
    *edits, boxes = state["edits"]
    return {**state, "boxes": boxes, "edits": edits, "sel": max(0, min(state.get("sel", 0), len(boxes) - 1))}


def undo_decision(state: dict) -> dict:
    """Undo this session's last decision: the image gets its previous review state and boxes back (journaled
    as an undo), and the queue goes back to it."""
    done = list(state.get("done") or [])
    if not done:
        raise ProjectError("No decision of this session to undo.")
    project = get_project(state["project"])
    rec = project.undo(done.pop())
    ids = state["ids"]
    pos = ids.index(rec.id) if rec.id in ids else state["pos"]
    return {**state, "done": done, "pos": pos}


def describe(rec: ImageRecord) -> str:
    """A short Markdown note: the file, its status, the pre-labeler's view of it."""
    lines = [f"**{rec.file_name}** ({rec.width} × {rec.height}) · status **{rec.status}**"]
    if rec.image_label:
        lines.append(f"image label: *{rec.image_label}*")
    if rec.stage == "no_object":
        lines.append("pre-labeler: **no object found** (no label scored enough); draw a box and accept, reject, "
                     "or accept twice: none of the labels in it")
    elif rec.confidence is not None:
        lines.append(f"pre-labeler confidence: {rec.confidence:.2f}")
    if rec.label_scores:
        best = sorted(rec.label_scores.items(), key=lambda kv: -kv[1])[:3]
        lines.append("label scores: " + ", ".join(f"{k} {v:.2f}" for k, v in best))
    if rec.top5 and rec.top5[0]["label"] not in (rec.label_scores or {}):  # a map's labels: say what the classifier
        lines.append("the classifier sees: " + ", ".join(  # saw, which may be a class for the map to take
            f"{t['label']} {t['probability']:.0%}" for t in rec.top5[:3]))
    return "  \n".join(lines)


EMPTY_ACCEPT = ("No box on this image: accepting it says it holds none of the labels (a negative in every "
                "export). Accept again to do so, or draw a box first.")


def asks_first(state: dict, action: str, annotated: dict | None) -> dict | None:
    """Accepting an image with no box makes it a negative in every export, which a quick Enter on a photo the
    pre-labeler found nothing in does by mistake: the first such accept asks (the session returned remembers
    it asked, EMPTY_ACCEPT says what to do), the same accept again on that image goes through. None: nothing
    to ask."""
    if action != Action.ACCEPT or not state.get("ids") or plain((annotated or {}).get("boxes")):
        return None
    current = state["ids"][state["pos"]]
    return None if state.get("asked") == current else {**state, "asked": current}


def decide(state: dict, action: str, annotated: dict | None = None, advance: bool = True,
           drawn: str | None = None) -> dict:
    """Save a decision on the current image at once (accept takes the annotator's boxes), then move on.

    When `annotated` names its image (the app always sends the canvas's value, and the token of the photo the
    canvas drew as `drawn`), the decision is refused unless it is the current one (check_shown). Every box
    must have a label. A decision on an image decided elsewhere since the session showed it is refused: two tabs
    on one project never overwrite each other unseen. The journal row is kept for undo."""
    if not state["ids"]:
        raise ProjectError("nothing to review in this queue")
    if annotated is not None and "image" in annotated:
        check_shown(state, annotated, drawn)
    project = get_project(state["project"])
    rec = project.image(state["ids"][state["pos"]])
    if "seen" in state and rec.review != state["seen"]:  # another tab or reviewer decided since it was shown
        raise ProjectError(f"This image was {rec.review or 'put back to pending'} elsewhere (another tab or "
                           "reviewer) since it was shown here: nothing saved. Come back to it (→ ←) to see it now.")
    boxes = None
    if action == Action.ACCEPT:
        scale = display_scale(rec.width, rec.height)
        dicts = plain((annotated or {}).get("boxes"))
        unnamed = [str(i) for i, d in enumerate(dicts, 1) if not d["label"]]
        if unnamed:
            raise ProjectError(f"Box {', '.join(unnamed)} has no label: pick one (keys 1-9 or the label box), "
                               "or delete it.")
        boxes = from_annotator(dicts, scale, rec.width or 0, rec.height or 0, rec.current_boxes(), method="review")
    saved = project.decide(rec.id, action, boxes)
    state = {**state, "done": [*state.get("done", []), saved.decision]}
    return move(state, 1) if advance else state


def counts_line(counts: dict[str, int]) -> str:
    """The review's counts; the pre-labeler's "no object found" counts its verdicts, decided or not."""
    extra = f" · {counts['new']} not pre-labeled" if counts.get("new") else ""
    return (f"**{counts['accepted']}** accepted · **{counts['pending']}** pending · "
            f"**{counts['rejected']}** rejected · the pre-labeler found no object in {counts['no_object']}{extra}")


def open_queue(root: str | Path, name: str | None, order: str, status: str) -> dict:
    """A review session on the project called `name` under root."""
    return start(existing_project(root, name), order, status)


def need(state: dict | None) -> dict:
    """The session, or a message that a project must be opened first."""
    if not state:
        raise ProjectError("Open a project first.")
    return state


def export(state: dict | None, formats: list[str], include_proposals: bool, overwrite: bool,
           downloads: str | Path, show_paths: bool = True) -> tuple[str, list[str]]:
    """Write the chosen formats into the project's folder and zip each into `downloads`: (note, zip paths).

    show_paths: name the folders written (a local run's own disk); a public server's visitor gets the zips only."""
    project = get_project(need(state)["project"])
    if not formats:
        raise ExportError("Choose at least one format.")
    folders = export_all(project, formats, include_proposals=include_proposals, overwrite=overwrite)
    files = [str(zip_export(path, downloads)) for path in folders.values()]
    accepted = project.counts()["accepted"]  # what annotated(False) holds, without reading every box again
    n = len(project.annotated(True)) if include_proposals else accepted
    which = f"{accepted} accepted, {n - accepted} proposed and not reviewed yet" if include_proposals else "accepted"
    done = f"Exported {n} image{'' if n == 1 else 's'} ({which})"
    if show_paths:
        return f"{done} to " + ", ".join(f"`{p}`" for p in folders.values()), files
    titles = {key: title for title, key in FORMATS}
    return f"{done} as {', '.join(titles[f] for f in folders)}: download the zips below.", files


def improve_proposals(state: dict | None, progress: Progress | None = None) -> tuple[dict, str]:
    """`improve` on the open project (learn from its accepted boxes, propose again for every image not reviewed
    yet), then the queue read again at the same image: (session, what was learned). Refused while the image
    shown has edits not saved yet, which its new proposals would replace on the canvas."""
    state = need(state)
    if state.get("edits"):
        raise ProjectError("Accept, skip or undo your edits of this image first: improving redraws its proposals.")
    lines: list[str] = []
    improve(get_project(state["project"]), progress=progress, log=lines.append)
    shown = state["ids"][state["pos"]] if state["ids"] else None
    fresh = {**state, **start(state["project"], state["order"], state["status"])}
    if shown in fresh["ids"]:
        fresh["pos"] = fresh["ids"].index(shown)
    return fresh, " ".join(line[0].upper() + line[1:] + "." for line in lines)
