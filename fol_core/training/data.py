"""The training set: a source's images with their image-level labels, checked, and split once.

Labels come from any source the pre-labeler reads (a folder per class, a CSV image,label, a `datasets`
ClassLabel, a zip). A CSV cell may name several labels ("cat;dog"). Images labelled as having no
object of interest ("background", "none", ...) are negatives: every class's target is 0 for them.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from ..bootstrap.sources import Source, is_negative, open_source, source_spec
from ..errors import UserError

MIN_IMAGES = 3
"""The least number of images a class needs (at least one is held out to measure accuracy)."""
_SEPARATORS = re.compile(r"[;|]")


class TrainingError(UserError):
    """A training set or run that cannot be used as given; one line for the user."""


@dataclass(frozen=True)
class Example:
    key: str
    labels: frozenset[str]
    """Empty for a negative."""


@dataclass
class TrainingSet:
    source: Source
    spec: dict
    classes: list[str]
    train: list[Example]
    val: list[Example]
    unlabelled: int
    """Images of the source with no label, left out."""

    @property
    def negatives(self) -> int:
        return sum(not e.labels for e in self.train + self.val)

    def fingerprint(self) -> str:
        """Which images with which labels, in which split: a resumed run must see the same."""
        rows = [(e.key, sorted(e.labels), part) for part, es in (("t", self.train), ("v", self.val)) for e in es]
        return hashlib.sha256(json.dumps([self.classes, rows]).encode()).hexdigest()[:16]


def split_labels(text: str) -> frozenset[str]:
    """An image's labels from one label cell; a negative's is empty."""
    names = {t.strip() for t in _SEPARATORS.split(text) if t.strip()}
    return frozenset(n for n in names if not is_negative(n))


def load_training_set(text: str | dict, image_labels: str | None = "folders", workdir: str | Path | None = None,
                      val_fraction: float = 0.2, seed: int = 0) -> TrainingSet:
    """Read, check and split a source's labelled images (TrainingError with one line when it cannot train).

    `text` is what the user typed, or a source spec already made (the app's confined server folders)."""
    spec = text if isinstance(text, dict) else source_spec(text, image_labels)
    text = Path(spec.get("root") or spec.get("path") or "the source").name  # an upload's server path unsaid
    source = open_source(spec, workdir)
    examples, unlabelled = [], 0
    for item in source.items():
        if item.label is None:
            unlabelled += 1
        else:
            examples.append(Example(item.key, split_labels(item.label)))
    if not examples:
        raise TrainingError(f"{text}: no image has a label (put each class's images in a folder named after it, "
                            "or give a CSV of image,label)")
    counts: dict[str, int] = {}
    for e in examples:
        for name in e.labels:
            counts[name] = counts.get(name, 0) + 1
    classes = sorted(counts)
    few = [f"{c!r} has {counts[c]}" for c in classes if counts[c] < MIN_IMAGES]
    if few:
        raise TrainingError(f"too few images: class {', '.join(few)}; each class needs at least {MIN_IMAGES}")
    negatives = sum(not e.labels for e in examples)
    if len(classes) == 1 and not negatives:
        raise TrainingError(f"only one class ({classes[0]!r}) and no negatives: add a folder 'background' of photos "
                            "without it, or a second class")
    if not classes:
        raise TrainingError("every image is a negative: name at least one class")
    train, val = _split(examples, val_fraction, seed)
    return TrainingSet(source, spec, classes, train, val, unlabelled)


def _split(examples: list[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """A held-out part of each label combination (at least one image of any with two or more), fixed by the seed."""
    groups: dict[frozenset[str], list[Example]] = {}
    for e in sorted(examples, key=lambda e: e.key):
        groups.setdefault(e.labels, []).append(e)
    rng = random.Random(seed)
    train, val = [], []
    for labels in sorted(groups, key=lambda g: sorted(g)):
        group = groups[labels]
        rng.shuffle(group)
        n_val = max(1, round(fraction * len(group))) if len(group) >= 2 else 0
        val += group[:n_val]
        train += group[n_val:]
    return train, val
