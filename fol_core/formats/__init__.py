"""Annotation formats: one small module per format, each a writer and a reader of AnnotatedImage."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..result import Box, Localization


@dataclass
class AnnotatedImage:
    """One image's boxes, as every exporter takes them: file name inside the dataset, size, boxes."""

    file_name: str
    width: int
    height: int
    boxes: list[Box] = field(default_factory=list)

    @classmethod
    def from_localization(cls, result: Localization, file_name: str) -> AnnotatedImage:
        return cls(file_name, result.width, result.height, list(result.boxes))


def categories_of(items: list[AnnotatedImage]) -> list[str]:
    """The labels used, in order of first appearance."""
    return list(dict.fromkeys(b.label for item in items for b in item.boxes))


__all__ = ["AnnotatedImage", "categories_of"]
