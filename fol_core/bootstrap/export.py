"""`export`: a project's boxes as Pascal VOC, COCO, YOLO and a Hugging Face dataset, images included.

Each format goes to its own folder (default: inside the project, e.g. exports/NAME/voc), built
beside it and swapped in when complete, so a failed export leaves the previous one whole. A folder
carries a marker naming the project that wrote it: an export replaces its own project's earlier
export, and refuses any other non-empty folder unless told to overwrite (then it only adds and
replaces its own files there, deleting nothing). File names come from the project (flattened,
unique) and every path is checked to stay inside the destination.

Each format's module (fol_core.formats) owns its folder layout; class ids follow the project's label list.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from ..errors import UserError, about, one_line
from ..formats import AnnotatedImage, coco, hf, voc, yolo
from ..images import portable_bytes, stored_misread
from ..paths import copy_or_link, exclusive
from .project import Project, open_project
from .sources import SHOW_FIRST, FolderSource

FORMATS = {"voc": voc, "coco": coco, "yolo": yolo, "hf": hf}
"""Each format's module (its write_dataset owns its layout)."""
EXPORT_MARKER = "fol-export.json"

HELP = "export a pre-labeled project's boxes as Pascal VOC, COCO, YOLO and/or a Hugging Face dataset"


class ExportError(UserError):
    """An export that would overwrite someone else's files, or has nothing to write; one line for the user."""


class NothingToExport(ExportError):
    """No image is accepted yet (and the proposals were not asked for)."""


class ProjectImages:
    """A project's image files, by the file names the project gave them: copied (or hard-linked with link) as they
    are, except where readers would see them otherwise than the reviewer did (images.portable_bytes): a photo
    stored sideways with an EXIF orientation is written upright, so that its pixels, its size in the annotations
    and its boxes agree for every reader; 16-bit, float and CMYK pixels as the 8-bit RGB or grey fol showed."""

    def __init__(self, project: Project, items: list[tuple], link: bool = False) -> None:
        self.source = project.source()
        self.keys = {a.file_name: rec.key for rec, a in items}
        self.link = link

    def missing(self) -> list[str]:
        """The file names whose image a folder source no longer holds (moved or deleted since pre-labeling)."""
        if not isinstance(self.source, FolderSource):
            return []
        return [name for name, key in self.keys.items() if not self.source.path(key).is_file()]

    def read(self, item: AnnotatedImage) -> bytes:
        data = self.source.read_bytes(self.keys[item.file_name])
        return portable_bytes(data) or data

    def copy(self, item: AnnotatedImage, target: Path) -> None:
        key = self.keys[item.file_name]
        try:
            if isinstance(self.source, FolderSource) and not stored_misread(self.source.path(key)):
                copy_or_link(self.source.path(key), target, self.link)
            else:
                target.write_bytes(self.read(item))
        except OSError as exc:  # gone while exporting: the export stops, the last whole one stays
            raise ExportError(about(item.file_name, exc)) from None


def check_destination(dest: Path, project: Project, overwrite: bool) -> bool:
    """Whether dest may be replaced whole (True: empty, absent, or this project's earlier export).

    Raises ExportError for another project's export or a non-empty folder of other files, unless overwrite.
    """
    if not dest.exists():
        return True
    if not dest.is_dir():
        raise ExportError(f"{dest} is a file, not a folder")
    if not any(dest.iterdir()):
        return True
    try:
        owner = json.loads((dest / EXPORT_MARKER).read_text(encoding="utf-8")).get("project")
    except (OSError, ValueError):
        owner = None
    if owner == project.id:
        return True
    if not overwrite:
        whose = "another project's export" if owner else "files that are not this project's export"
        raise ExportError(f"{dest} holds {whose}: choose another folder, or overwrite")
    return False


def export(
    project: Project,
    fmt: str,
    dest: str | Path | None = None,
    include_proposals: bool = False,
    overwrite: bool = False,
    link: bool = False,
) -> Path:
    """Export the accepted boxes (and, with include_proposals, the unreviewed proposals) in one format; one export
    into a folder at a time (a second, e.g. a double click on Export, is refused in one line)."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    dest = Path(dest) if dest else project.folder / fmt
    with exclusive(dest, "exported"):
        return _export(project, fmt, dest, include_proposals, overwrite, link)


def _export(project: Project, fmt: str, dest: Path, include_proposals: bool, overwrite: bool, link: bool) -> Path:
    items = project.annotated(include_proposals)
    if not items:
        raise NothingToExport("nothing to export: no image is accepted yet"
                              + ("" if include_proposals else " (or include the proposals)"))
    write = FORMATS[fmt].write_dataset
    annotated, categories, images = [a for _, a in items], project.labels(), ProjectImages(project, items, link)
    if gone := images.missing():  # an export without them would hold boxes for images it does not have
        first = ", ".join(gone[:SHOW_FIRST]) + (", ..." if len(gone) > SHOW_FIRST else "")
        raise ExportError(f"{len(gone)} image(s) to export are no longer in the project's source (moved or deleted?): "
                          f"{first}; put them back, or reject them in the review, then export again")
    replace_whole = check_destination(dest, project, overwrite)
    marker = {"project": project.id, "format": fmt, "images": len(items), "exported": time.time(),
              "include_proposals": include_proposals}
    if not replace_whole:  # overwrite asked for on a foreign folder: add our files, delete nothing
        write(annotated, dest, categories, images)
        (dest / EXPORT_MARKER).write_text(json.dumps(marker, indent=1), encoding="utf-8")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write(annotated, tmp, categories, images)
        (tmp / EXPORT_MARKER).write_text(json.dumps(marker, indent=1), encoding="utf-8")
        if dest.exists():
            dest.rename(old)
        tmp.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return dest


def export_all(project: Project, formats: list[str], **kwargs) -> dict[str, Path]:
    return {fmt: export(project, fmt, **kwargs) for fmt in formats}


def zip_export(folder: Path, into: str | Path) -> Path:
    """A zip of an export folder, written in `into` (the app's download area), named PROJECT-FORMAT.zip."""
    base = Path(into) / f"{folder.parent.name}-{folder.name}"
    return Path(shutil.make_archive(str(base), "zip", root_dir=folder))


# --- command line -----------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("project", help="the project folder (what prelabel --out made)")
    parser.add_argument("--format", nargs="+", default=list(FORMATS), choices=FORMATS, help="default: all four")
    parser.add_argument("--dest", default=None, help="destination folder (one format only; default: PROJECT/FORMAT)")
    parser.add_argument("--include-proposals", action="store_true", help="also export the unreviewed proposals")
    parser.add_argument("--overwrite", action="store_true", help="write into a folder that is not this project's export")
    parser.add_argument("--link", action="store_true", help="hard-link the images instead of copying them")


def run(args: argparse.Namespace) -> int:
    if args.dest and len(args.format) > 1:
        print("error: --dest takes one --format", file=sys.stderr)
        return 2
    try:
        project = open_project(args.project)
        for fmt in args.format:
            path = export(project, fmt, args.dest, args.include_proposals, args.overwrite, args.link)
            print(f"{fmt}: {len(project.annotated(args.include_proposals))} images -> {path}")
    except NothingToExport:
        hint = "" if args.include_proposals else ": review it first, or export the proposals with --include-proposals"
        print(f"error: nothing to export in {args.project}, no image is accepted yet{hint}", file=sys.stderr)
        return 2
    except UserError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    return 0
