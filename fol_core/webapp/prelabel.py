"""The Pre-label tab: a folder or an uploaded zip in, a resumable review project (ROOT/NAME) out."""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path

from ..bootstrap.prelabel import Progress, prelabel_folder
from ..bootstrap.project import ProjectError
from ..errors import UserError
from ..labelmap import LabelMap
from . import review

LABEL_MAP_EXAMPLE = """labels:
  dog: [dog]              # a WordNet group: every dog breed
  cat: [domestic cat]     # tabby, tiger cat, Persian, Siamese, Egyptian cat
  cup: [cup, coffee mug, espresso]
threshold: 0.1            # below this score: "no object found"
"""
LABEL_MODES = [("None", "none"), ("Folder names", "folders"), ("A CSV (image, label)", "csv")]


def check_map(text: str | None) -> str:
    """What each label of the map means (Markdown), or why it cannot be used."""
    if not (text or "").strip():
        return "No map: each image gets the ImageNet class names."
    try:
        lm = LabelMap.parse(text)
    except UserError as exc:
        return f"⚠️ {html.escape(str(exc))}"
    return "\n".join(f"- {html.escape(line)}" for line in lm.describe()) + f"\n\nthreshold: {lm.threshold}"


def run(root: str | Path, folder: str | None, upload: str | None, name: str, map_text: str | None, label_mode: str,
        label_csv: str | None, method: str, limit: float | None, overwrite: bool,
        progress: Progress | None = None) -> str:
    """Pre-label a folder or an uploaded zip into ROOT/NAME, resuming what is there; a Markdown note."""
    source = upload or (folder or "").strip()
    if not source:
        raise ProjectError("Give a folder on this server, or upload a zip of images.")
    if label_mode == "csv" and not label_csv:
        raise ProjectError("Upload the CSV of image-level labels (columns image, label).")
    image_labels = {"folders": "folders", "csv": label_csv}.get(label_mode)
    out = review.project_folder(root, name)
    project, summary, new = prelabel_folder(source, out, map_text, image_labels, method, int(limit or 0) or None,
                                            bool(overwrite), progress=progress)
    review.forget(out)
    errors = "".join(f"\n- {html.escape(e)}" for e in summary.errors[:10])
    return (f"**{html.escape(project.name)}**: {new} new images; {summary.line()}{errors}\n\n"
            f"{review.counts_line(project.counts())}. Open the **Review** tab (↻, then Open) to check the boxes.")


def progress_steps(report: Callable[..., None]) -> Progress:
    """A pre-label progress callback that forwards to a progress bar taking ((done, total), desc, unit)."""
    def step(done: int, total: int, key: str) -> None:
        report((done, total), desc=f"Pre-labeling {key}" if key else "Pre-labeling", unit="images")
    return step
