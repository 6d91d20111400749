"""`export`: a project's boxes as Pascal VOC, COCO, YOLO and a Hugging Face dataset, images included.

Each format goes to its own folder (default: inside the project, e.g. exports/NAME/voc), built
beside it and swapped in when complete, so a failed export leaves the previous one whole. A folder
carries a marker naming the project that wrote it: an export replaces its own project's earlier
export, and refuses any other non-empty folder unless told to overwrite (then it only adds and
replaces its own files there, deleting nothing). File names come from the project (flattened,
unique) and every path is checked to stay inside the destination.

Layouts:
- voc:  Annotations/STEM.xml, ImageSets/Main/trainval.txt (+ LABEL_trainval.txt), JPEGImages/FILE
- coco: annotations.json (bbox [x, y, w, h], area, iscrowd, categories), images/FILE
- yolo: images/FILE, labels/STEM.txt (class cx cy w h, normalized), classes.txt, data.yaml
- hf:   a `datasets` save_to_disk folder: image, image_id, file_name, width, height, objects{id, area, bbox, category}
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path, PurePosixPath

from ..formats import AnnotatedImage, categories_of, coco, hf, voc, yolo
from .paths import UnsafePathError, copy_or_link, relative_parts, safe_join
from .project import Project, ProjectError, open_project
from .sources import FolderSource

FORMATS = ("voc", "coco", "yolo", "hf")
EXPORT_MARKER = "fol-export.json"

HELP = "export a pre-labeled project's boxes as Pascal VOC, COCO, YOLO and/or a Hugging Face dataset"


class ExportError(ValueError):
    """An export that would overwrite someone else's files, or has nothing to write; one line for the user."""


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


def _label_file_name(label: str) -> str:
    return "_".join(relative_parts(label.replace(" ", "_"))) or "label"


def _write_format(fmt: str, root: Path, items: list[tuple], project: Project, categories: list[str], link: bool) -> None:
    """Write one format's files into root (an empty or own folder)."""
    source = project.source()
    annotated = [a for _, a in items]
    recs = {a.file_name: r for r, a in items}

    def image_bytes(item: AnnotatedImage) -> bytes:
        return source.read_bytes(recs[item.file_name].key)

    def put_images(folder: str) -> None:
        (root / folder).mkdir(parents=True, exist_ok=True)
        for rec, item in items:
            target = safe_join(root, folder, item.file_name)
            if isinstance(source, FolderSource):
                copy_or_link(source.path(rec.key), target, link)
            else:
                target.write_bytes(source.read_bytes(rec.key))

    if fmt == "voc":
        (root / "Annotations").mkdir(parents=True, exist_ok=True)
        main = root / "ImageSets" / "Main"
        main.mkdir(parents=True, exist_ok=True)
        stems = [PurePosixPath(a.file_name).stem for a in annotated]
        for stem, item in zip(stems, annotated):
            voc.write(item, safe_join(root, "Annotations", f"{stem}.xml"))
        (main / "trainval.txt").write_text("".join(s + "\n" for s in stems), encoding="utf-8")
        for label in categories:
            lines = [f"{s} {1 if any(b.label == label for b in a.boxes) else -1}\n" for s, a in zip(stems, annotated)]
            safe_join(main, f"{_label_file_name(label)}_trainval.txt").write_text("".join(lines), encoding="utf-8")
        put_images("JPEGImages")
    elif fmt == "coco":
        coco.write(annotated, root / "annotations.json", categories)
        put_images("images")
    elif fmt == "yolo":
        yolo.write(annotated, root, categories)
        put_images("images")
    elif fmt == "hf":
        hf.write(annotated, root, image_bytes, categories)
    else:
        raise ExportError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")


def export(
    project: Project,
    fmt: str,
    dest: str | Path | None = None,
    include_proposals: bool = False,
    overwrite: bool = False,
    link: bool = False,
) -> Path:
    """Export the accepted boxes (and, with include_proposals, the unreviewed proposals) in one format."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    dest = Path(dest) if dest else project.folder / fmt
    items = project.annotated(include_proposals)
    if not items:
        raise ExportError("nothing to export: no image is accepted yet" + ("" if include_proposals else " (or include the proposals)"))
    categories = [n for n in project.label_map.names if n in set(categories_of([a for _, a in items]))] if project.meta("label_map") else []
    categories += [n for n in categories_of([a for _, a in items]) if n not in categories]
    replace_whole = check_destination(dest, project, overwrite)
    marker = {"project": project.id, "format": fmt, "images": len(items), "exported": time.time(),
              "include_proposals": include_proposals}
    if not replace_whole:  # overwrite asked for on a foreign folder: add our files, delete nothing
        dest.mkdir(parents=True, exist_ok=True)
        _write_format(fmt, dest, items, project, categories, link)
        (dest / EXPORT_MARKER).write_text(json.dumps(marker, indent=1), encoding="utf-8")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        if fmt != "hf":
            tmp.mkdir()
        _write_format(fmt, tmp, items, project, categories, link)
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
    except (ProjectError, ExportError, UnsafePathError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
