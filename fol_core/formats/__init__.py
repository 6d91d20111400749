"""Annotation formats: one small module per format, each owning its folder layout behind one signature.

    write_dataset(items, root, categories, images) -> root      read_dataset(root) -> items

`items` are AnnotatedImage (boxes in the photo's pixels), `categories` the export's class list (the
project's whole label set in a fixed order, so class ids do not depend on which images are exported),
`images` gives each image's file (None: annotations only, where the format allows it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..errors import UserError
from ..paths import safe_join
from ..result import Box


class FormatError(UserError):
    """A dataset folder that is not in the format it was read as."""


@dataclass
class AnnotatedImage:
    """One image's boxes, as every exporter takes them: file name inside the dataset, size, boxes."""

    file_name: str
    width: int
    height: int
    boxes: list[Box] = field(default_factory=list)


class ImageFiles(Protocol):
    """Where an export's images come from (a project's source, a folder)."""

    def read(self, item: AnnotatedImage) -> bytes:
        """The image file's bytes."""

    def copy(self, item: AnnotatedImage, target: Path) -> None:
        """Write the image file at target (a copy or a hard link)."""


def category_list(items: Iterable[AnnotatedImage], labels: Iterable[str] = ()) -> list[str]:
    """The class list: `labels` in their order, then any other label the boxes use, in order of first use.

    The one place categories are merged: every format numbers its classes by this list.
    """
    names = dict.fromkeys(labels)
    names.update(dict.fromkeys(b.label for item in items for b in item.boxes))
    return list(names)


def put_images(items: Iterable[AnnotatedImage], folder: Path, images: ImageFiles) -> None:
    """Each item's image file in folder/FILE_NAME (names are checked to stay inside the folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    for item in items:
        images.copy(item, safe_join(folder, item.file_name))


__all__ = ["AnnotatedImage", "FormatError", "ImageFiles", "category_list", "put_images"]
