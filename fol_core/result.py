"""The one result type every method returns and every drawer and exporter reads."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

MAX_LABEL = 100
"""Longest box label (characters); a label is one line of text in every export format."""


def clean_label(text: object) -> str:
    """A label as one short line: control and line-break characters become spaces (a newline in a label would
    split YOLO's classes.txt and shift every class after it), runs of spaces one, cut to MAX_LABEL."""
    chars = (" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in str(text))
    return re.sub(r"\s+", " ", "".join(chars)).strip()[:MAX_LABEL].strip()


@dataclass
class Box:
    """A box in the original photo's pixels: (x0, y0) top-left edge, (x1, y1) bottom-right edge."""

    x0: float
    y0: float
    x1: float
    y1: float
    label: str
    class_index: int
    score: float
    method: str

    def __post_init__(self) -> None:
        self.label = clean_label(self.label) or "object"  # every box enters the system through here

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("x0", "y0", "x1", "y1", "score"):
            d[k] = round(float(d[k]), 4)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Box:
        return cls(
            float(d["x0"]), float(d["y0"]), float(d["x1"]), float(d["y1"]), str(d["label"]),
            int(d.get("class_index", -1)), float(d.get("score", 1.0)), str(d.get("method", "manual")),
        )


@dataclass
class Explanation:
    """What lies behind one class's boxes, at model resolution (input_size x input_size)."""

    class_index: int
    label: str
    probability: float
    heatmap: np.ndarray | None = None
    """Grad-CAM / CAM: the class heatmap in [0, 1]."""
    neuron_maps: list[np.ndarray] = field(default_factory=list)
    """FOL: each selected neuron's guided-backprop map (mean over colour, >= 0)."""
    blobs: list[np.ndarray] = field(default_factory=list)
    """FOL: each neuron's cleaned blob mask (bool)."""
    blob_scores: list[float] = field(default_factory=list)
    """FOL: the class probability on image x blob, for each blob."""
    chosen: list[int] = field(default_factory=list)
    """FOL: the indices of the k best blobs."""
    mask: np.ndarray | None = None
    """The binary region the boxes are drawn around (FOL: union of the chosen blobs)."""


@dataclass
class Localization:
    """Boxes found in one photo, the explanations behind them and the classifier's top-5."""

    width: int
    height: int
    model: str
    method: str
    boxes: list[Box]
    top5: list[tuple[int, str, float]]
    explanations: list[Explanation] = field(default_factory=list)
    seconds: float = 0.0
    image: str = ""
    probabilities: np.ndarray | None = field(default=None, repr=False)
    """The classifier's 1000 class probabilities (not written to JSON: callers score their own labels with it)."""

    def top5_dicts(self) -> list[dict[str, Any]]:
        return [{"class_index": i, "label": n, "probability": round(p, 5)} for i, n, p in self.top5]

    def to_json(self) -> dict[str, Any]:
        """The CLI's per-image JSON: {image, width, height, model, boxes, seconds} (+ method, top5)."""
        return {
            "image": self.image,
            "width": self.width,
            "height": self.height,
            "model": self.model,
            "method": self.method,
            "boxes": [b.to_dict() for b in self.boxes],
            "top5": self.top5_dicts(),
            "seconds": round(self.seconds, 4),
        }
