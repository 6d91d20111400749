"""The Pre-label tab: a folder or an uploaded zip in, a resumable review project (ROOT/NAME) out."""

from __future__ import annotations

import html
import os
import re
from collections.abc import Callable
from pathlib import Path

from ..bootstrap.prelabel import Progress, prelabel_folder
from ..bootstrap.project import ProjectError
from ..bootstrap.sources import source_spec
from ..errors import UserError, one_line
from ..labelmap import LabelMap
from ..models import is_trained_model, load_model, read_card
from . import AccessError, review

LABEL_MAP_EXAMPLE = """labels:
  dog: [dog]              # a WordNet group: every dog breed
  cat: [domestic cat]     # tabby, tiger cat, Persian, Siamese, Egyptian cat
  cup: [cup, coffee mug, espresso]
threshold: 0.1            # below this score: "no object found"
"""
LABEL_MODES = [("None", "none"), ("Folder names", "folders"), ("A CSV (image, label)", "csv")]
HUB_NAME = re.compile(r"[\w.-]+/[\w.-]+")
"""hf:OWNER/NAME: a dataset on the Hugging Face Hub (not a path on this server)."""
FOLDERS_OFF = ("Folders on this server are turned off: upload a zip of images instead "
               "(whoever runs the app can allow one folder with --allow-folders ROOT).")


def check_map(text: str | None, model_name: str | None = None) -> str:
    """What each label of the map means (Markdown), or why it cannot be used (a trained model names its own
    classes and takes no map)."""
    if model_name and is_trained_model(model_name):
        own = html.escape(", ".join(read_card(model_name)["classes"]))
        if (text or "").strip():
            return f"⚠️ {html.escape(Path(model_name).name)} names its own classes ({own}): leave the map empty."
        return f"No map needed: {html.escape(Path(model_name).name)} names its own classes ({own})."
    if not (text or "").strip():
        return "No map: each image gets the ImageNet class names."
    try:
        lm = LabelMap.parse(text)
    except UserError as exc:
        return f"⚠️ {html.escape(one_line(exc))}"
    return "\n".join(f"- {html.escape(line)}" for line in lm.describe()) + f"\n\nthreshold: {lm.threshold}"


def _escapes(path: Path, base: Path) -> Path | None:
    """The first link under path that leads out of base (a folder source confines its own files; a dataset
    folder is read by `datasets`, so its links are checked here), or None."""
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            entry = Path(dirpath) / name
            if entry.is_symlink() and not _inside(entry.resolve(), base):
                return entry
    return None


def _inside(path: Path, base: Path) -> bool:
    return path == base or base in path.parents


def server_source(text: str, allowed: str | Path | None, image_labels: str | None = None) -> dict:
    """The source spec for a folder, zip or dataset typed into the app, confined to the `allowed` root.

    Refused when server folders are off (allowed is None), or the path (relative to the root, or absolute)
    resolves outside the root; links inside are followed only while they stay in the root."""
    if allowed is None:
        raise AccessError(FOLDERS_OFF)
    base = Path(allowed).resolve()
    hub = text.startswith("hf:")
    target = text[3:] if hub else text
    path = (base / target).resolve()  # an absolute path stays itself; a relative one is under the root
    if hub and not path.exists() and HUB_NAME.fullmatch(target):
        return source_spec(text, image_labels)  # from the Hub: nothing on this server's disk is read
    if not _inside(path, base):
        raise AccessError(f"{text}: outside the folder this server shares ({base.name}/); give a path inside it")
    if not path.exists():
        raise AccessError(f"{text}: no such folder, zip or dataset in {base.name}/")
    spec = source_spec(f"hf:{path}" if hub else str(path), image_labels)
    if spec["kind"] == "hf":
        link = _escapes(path, base)
        if link is not None:
            raise AccessError(f"{link.relative_to(base)}: a link out of the folder this server shares, refused")
    if spec["kind"] != "zip":
        spec["within"] = str(base)
    return spec


def run(root: str | Path, folder: str | None, upload: str | None, name: str, map_text: str | None, label_mode: str,
        label_csv: str | None, method: str, limit: float | None, overwrite: bool,
        progress: Progress | None = None, allowed: str | Path | None = None, model_name: str | None = None,
        topn: float | None = None) -> str:
    """Pre-label a server folder (only inside `allowed`) or an uploaded zip into ROOT/NAME with the model
    chosen (default: the offline default), up to `topn` labels per image, resuming what is there; a Markdown
    note."""
    if label_mode == "csv" and not label_csv:
        raise ProjectError("Upload the CSV of image-level labels (columns image, label).")
    image_labels = {"folders": "folders", "csv": label_csv}.get(label_mode)
    text = (folder or "").strip()
    if upload:
        source: str | dict = upload
    elif text:
        source = server_source(text, allowed, image_labels)
    else:
        raise ProjectError("Upload a zip of images" + (", or give a folder on this server." if allowed else "."))
    out = review.project_folder(root, name)
    project, summary, new = prelabel_folder(source, out, map_text, image_labels, method, int(limit or 0) or None,
                                            bool(overwrite), model=load_model(model_name) if model_name else None,
                                            progress=progress, topn=max(1, int(topn or 1)))
    review.forget(out)
    errors = "".join(f"\n- {html.escape(e)}" for e in summary.errors[:10])
    notes = "".join(f"\n- ⚠️ {html.escape(n)}" for n in summary.notes)
    return (f"**{html.escape(project.name)}**: {new} new image{'' if new == 1 else 's'}; {summary.line()}{errors}{notes}\n\n"
            f"{review.counts_line(project.counts())}. Open the **Review** tab and click Open to check the boxes.")


def progress_steps(report: Callable[..., None]) -> Progress:
    """A pre-label progress callback that forwards to a progress bar taking ((done, total), desc, unit)."""
    def step(done: int, total: int, key: str) -> None:
        report((done, total), desc=f"Pre-labeling {key}" if key else "Pre-labeling", unit="images")
    return step
