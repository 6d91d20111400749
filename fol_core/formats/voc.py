"""Pascal VOC: Annotations/ID.xml per image (integer 1-based pixels: xmin = x0 + 1, xmax = x1),
ImageSets/Main/trainval.txt (+ LABEL_trainval.txt with 1 / -1 per image) and JPEGImages/ID.jpg.

VOC's readers (torchvision's VOCDetection, Detectron2, MMDetection) open JPEGImages/ID.jpg and split the lists on
whitespace, so an image's ID is its file's stem with whitespace as "_", and JPEGImages holds JPEG files only:
a JPEG as it is (or linked), any other image written as JPEG at quality 95."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path, PurePosixPath

from ..images import IMAGE_SUFFIXES, jpeg_bytes
from ..paths import relative_parts, safe_join, unique_name
from ..result import Box
from . import AnnotatedImage, FormatError, ImageFiles

ANNOTATIONS = "Annotations"
IMAGES = "JPEGImages"
IMAGE_SETS = Path("ImageSets") / "Main"
SET_NAME = "trainval"
JPEG_SUFFIXES = (".jpg", ".jpeg")


def to_xml(item: AnnotatedImage, folder: str = IMAGES) -> str:
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = folder
    ET.SubElement(root, "filename").text = item.file_name
    size = ET.SubElement(root, "size")
    for tag, value in (("width", item.width), ("height", item.height), ("depth", 3)):
        ET.SubElement(size, tag).text = str(value)
    ET.SubElement(root, "segmented").text = "0"
    for b in item.boxes:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = b.label
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = "0"
        bnd = ET.SubElement(obj, "bndbox")
        x0, y0 = max(1, round(b.x0) + 1), max(1, round(b.y0) + 1)
        x1, y1 = min(item.width, max(x0, round(b.x1))), min(item.height, max(y0, round(b.y1)))
        for tag, value in (("xmin", x0), ("ymin", y0), ("xmax", x1), ("ymax", y1)):
            ET.SubElement(bnd, tag).text = str(value)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def from_xml(text: str) -> AnnotatedImage:
    root = ET.fromstring(text)
    size = root.find("size")
    item = AnnotatedImage(
        root.findtext("filename", ""), int(size.findtext("width")), int(size.findtext("height"))
    )
    for obj in root.iter("object"):
        bnd = obj.find("bndbox")
        x0, y0, x1, y1 = (float(bnd.findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax"))
        item.boxes.append(Box(x0 - 1, y0 - 1, x1, y1, obj.findtext("name", ""), -1, 1.0, "voc"))
    return item


def write(item: AnnotatedImage, path: str | Path, folder: str = IMAGES) -> Path:
    """One annotation file."""
    path = Path(path)
    path.write_text(to_xml(item, folder), encoding="utf-8")
    return path


def read(path: str | Path) -> AnnotatedImage:
    """One annotation file."""
    return from_xml(Path(path).read_text(encoding="utf-8"))


def label_file_name(label: str) -> str:
    """LABEL_trainval.txt's LABEL: the label as one safe file-name part."""
    return "_".join(relative_parts(label.replace(" ", "_"))) or "label"


def write_dataset(items: list[AnnotatedImage], root: str | Path, categories: list[str],
                  images: ImageFiles | None = None) -> Path:
    root = Path(root)
    main = root / IMAGE_SETS
    (root / ANNOTATIONS).mkdir(parents=True, exist_ok=True)
    main.mkdir(parents=True, exist_ok=True)
    stems = image_id_list(items)
    jpegs = [AnnotatedImage(f"{stem}.jpg", item.width, item.height, item.boxes) for stem, item in zip(stems, items)]
    for stem, item in zip(stems, jpegs):
        write(item, safe_join(root, ANNOTATIONS, f"{stem}.xml"))
    (main / f"{SET_NAME}.txt").write_text("".join(s + "\n" for s in stems), encoding="utf-8")
    for label in categories:
        lines = [f"{s} {1 if any(b.label == label for b in item.boxes) else -1}\n" for s, item in zip(stems, items)]
        safe_join(main, f"{label_file_name(label)}_{SET_NAME}.txt").write_text("".join(lines), encoding="utf-8")
    if images is not None:
        folder = root / IMAGES
        folder.mkdir(parents=True, exist_ok=True)
        for item, jpeg in zip(items, jpegs):
            target = safe_join(folder, jpeg.file_name)
            if PurePosixPath(item.file_name).suffix.lower() in JPEG_SUFFIXES:
                images.copy(item, target)
            else:
                target.write_bytes(jpeg_bytes(images.read(item)))
    return root


def image_id_list(items: list[AnnotatedImage]) -> list[str]:
    """Each image's ID: its file's stem with whitespace as "_", a short hash added where that makes two alike."""
    taken: set[str] = set()
    return [PurePosixPath(unique_name("_".join(PurePosixPath(item.file_name).stem.split()) + ".jpg", taken)).stem
            for item in items]


def image_ids(root: str | Path, imageset: str | None = None) -> list[str]:
    """The dataset's image ids in their listed order.

    ImageSets/Main/NAME.txt when `imageset` names it; else the only list in ImageSets/Main when there
    is exactly one (imagenet-val-dev's dev.txt); else every Annotations/*.xml, sorted by name.
    """
    root = Path(root)
    lists = sorted((root / IMAGE_SETS).glob("*.txt"))
    if imageset:
        chosen = root / IMAGE_SETS / f"{imageset}.txt"
        if not chosen.is_file():
            raise FormatError(f"no image list {chosen}")
    elif len(lists) == 1:
        chosen = lists[0]
    else:
        return sorted(p.stem for p in (root / ANNOTATIONS).glob("*.xml"))
    lines = chosen.read_text(encoding="utf-8").splitlines()
    return list(dict.fromkeys(line.split()[0] for line in lines if line.strip()))


def annotation_path(root: str | Path, image_id: str) -> Path:
    return Path(root) / ANNOTATIONS / f"{image_id}.xml"


def image_path(root: str | Path, image_id: str, file_name: str = "") -> Path | None:
    """The image of an annotation: JPEGImages/FILE_NAME, else JPEGImages/IMAGE_ID.* (None: there is none)."""
    folder = Path(root) / IMAGES
    if file_name and (folder / file_name).is_file():
        return folder / file_name
    return next((p for p in sorted(folder.glob(f"{image_id}.*")) if p.suffix.lower() in IMAGE_SUFFIXES), None)


def read_dataset(root: str | Path, imageset: str | None = None) -> list[AnnotatedImage]:
    """Every listed image's annotation (see image_ids)."""
    if not (Path(root) / ANNOTATIONS).is_dir():
        raise FormatError(f"{root} is not a Pascal VOC folder: it has no {ANNOTATIONS}/")
    return [read(annotation_path(root, i)) for i in image_ids(root, imageset)]
