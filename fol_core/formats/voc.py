"""Pascal VOC XML: one file per image, integer 1-based pixel coordinates (xmin = x0 + 1, xmax = x1)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from ..result import Box
from . import AnnotatedImage


def to_xml(item: AnnotatedImage, folder: str = "JPEGImages") -> str:
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


def write(item: AnnotatedImage, path: str | Path, folder: str = "JPEGImages") -> Path:
    path = Path(path)
    path.write_text(to_xml(item, folder), encoding="utf-8")
    return path


def read(path: str | Path) -> AnnotatedImage:
    return from_xml(Path(path).read_text(encoding="utf-8"))
