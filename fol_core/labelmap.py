"""The project's own labels ("dog", "cat", "bottle"), each a set of ImageNet classes.

A label map file (YAML or JSON) maps each user label to a list of ImageNet classes given by index,
WordNet id, name or synonym, or by a WordNet ancestor (its name or wnid): "dog" is every dog breed.

    labels:
      dog: [dog]                       # a WordNet ancestor: the 118 dog breeds
      cat: [domestic cat]              # tabby, tiger cat, Persian, Siamese, Egyptian cat
      bottle: [beer bottle, wine bottle, water bottle, pop bottle, 720]
    threshold: 0.1                     # optional: the least label score that counts as found

An entry is first looked up as an ImageNet class, then as a synset of the WordNet hierarchy above
the classes (`wordnet:NAME` forces the latter). A user label's score is the sum of its classes'
probabilities. Without a map every ImageNet class name is a label (two classes sharing a name,
such as the two "crane"s, form one label). A trained model's label map is simply its own classes
(`LabelMap.for_classes`; stored with a `classes` list, entries name those classes, not ImageNet's).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import yaml

from . import hierarchy
from .errors import UserError
from .imagenet import UnknownClassError, classes, resolve_class
from .result import clean_label

if TYPE_CHECKING:
    from .models import Classifier

MAX_MAP_TEXT = 200_000
"""Longest label map (characters): a thousand labels fit many times over."""
THRESHOLD = 0.1
"""An image whose best label scores below this (sum of its classes' probabilities) is "no object found"."""


class LabelMapError(UserError):
    """A label map that cannot be used; the message is one line for the user."""


def resolve_entry(entry: str | int) -> frozenset[int]:
    """The ImageNet class indices an entry names: a class (index, wnid, name, synonym) or a WordNet ancestor."""
    text = str(entry).strip()
    if text.lower().startswith("wordnet:"):
        return _ancestor(text[len("wordnet:"):], entry)
    try:
        return frozenset({resolve_class(entry)})
    except UnknownClassError as exc:
        try:
            return _ancestor(text, entry)
        except LabelMapError:
            raise LabelMapError(str(exc).replace("no ImageNet class", "no ImageNet class or WordNet group")) from None


def _ancestor(text: str, entry: str | int) -> frozenset[int]:
    q = text.strip()
    synsets = [q.lower()] if hierarchy.is_synset(q.lower()) else hierarchy.find_synsets(q)
    found = frozenset().union(*(hierarchy.descendants(w) for w in synsets)) if synsets else frozenset()
    if not found:
        raise LabelMapError(f"no ImageNet class or WordNet group is called {entry!r}")
    return found


@dataclass
class LabelMap:
    """User label -> ImageNet class indices (ordered as written); `threshold` is the least score that counts."""

    labels: dict[str, tuple[int, ...]]
    threshold: float = THRESHOLD
    spec: dict[str, list[str | int]] = field(default_factory=dict)
    """The entries as the user wrote them (what `to_yaml` writes back)."""
    model_classes: tuple[str, ...] = ()
    """A trained model's classes, which the entries name (empty: the entries name ImageNet classes)."""
    _matrix: torch.Tensor | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def imagenet(cls, threshold: float = THRESHOLD) -> LabelMap:
        """No map: each ImageNet class name is a label."""
        labels: dict[str, list[int]] = {}
        for c in classes():
            labels.setdefault(c.name, []).append(c.index)
        return cls({k: tuple(v) for k, v in labels.items()}, threshold)

    @classmethod
    def for_classes(cls, names: list[str], threshold: float = 0.5) -> LabelMap:
        """A trained model's map: each of its classes is a label (scored by its own sigmoid, so 0.5)."""
        return cls({n: (i,) for i, n in enumerate(names)}, threshold, {n: [n] for n in names}, tuple(names))

    @classmethod
    def from_spec(cls, data: Mapping) -> LabelMap:
        """From the parsed file: {"labels": {label: [entries]}, "threshold": t} or just {label: [entries]}."""
        if not isinstance(data, Mapping):
            raise LabelMapError("a label map is a mapping of label -> list of ImageNet classes")
        body = data.get("labels", data) if "labels" in data else {k: v for k, v in data.items() if k != "threshold"}
        if not isinstance(body, Mapping) or not body:
            raise LabelMapError("the label map names no labels")
        try:
            threshold = float(data.get("threshold", THRESHOLD))
        except (TypeError, ValueError):
            raise LabelMapError(f"threshold must be a number, got {data.get('threshold')!r}") from None
        model_classes = tuple(str(c) for c in data.get("classes") or ())
        labels, spec = {}, {}
        for raw, entries in body.items():
            name = clean_label(raw)  # the names become box labels: one line each
            items = list(entries) if isinstance(entries, (list, tuple)) else [entries]
            if not name or not items:
                raise LabelMapError(f"label {name!r} needs a name and at least one ImageNet class")
            found: dict[int, None] = {}
            for e in items:
                if model_classes:
                    if str(e) not in model_classes:
                        raise LabelMapError(f"label {name!r}: the model has no class {e!r}")
                    found[model_classes.index(str(e))] = None
                    continue
                try:
                    found.update(dict.fromkeys(sorted(resolve_entry(e))))
                except LabelMapError as exc:
                    raise LabelMapError(f"label {name!r}: {exc}") from None
            labels[name] = tuple(found)
            spec[name] = items
        return cls(labels, threshold, spec, model_classes)

    @classmethod
    def parse(cls, text: str) -> LabelMap:
        """From YAML or JSON text (JSON is YAML). Aliases are refused: nested ones expand a few hundred bytes into
        gigabytes (the "billion laughs"), and a label map never needs them."""
        if len(text) > MAX_MAP_TEXT:
            raise LabelMapError(f"the label map is {len(text)} characters long (at most {MAX_MAP_TEXT})")
        try:
            if any(isinstance(e, yaml.AliasEvent) for e in yaml.parse(text, Loader=yaml.SafeLoader)):
                raise LabelMapError("the label map uses YAML aliases (*name), which are not allowed: write each list out")
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise LabelMapError(f"the label map is not valid YAML/JSON: {str(exc).splitlines()[0]}") from None
        return cls.from_spec(data or {})

    @classmethod
    def load(cls, path: str | Path) -> LabelMap:
        p = Path(path)
        if not p.is_file():
            raise LabelMapError(f"{path}: no such label map file")
        try:
            return cls.parse(p.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise LabelMapError(f"{path}: not UTF-8 text (byte {exc.start}); save the map as UTF-8") from None
        except OSError as exc:
            raise LabelMapError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from None

    @property
    def names(self) -> list[str]:
        return list(self.labels)

    def fits(self, model: Classifier) -> bool:
        """Whether the entries name this classifier's classes (a trained model's own, or ImageNet's): a map made
        for one model scores another's probabilities as nonsense, or not at all."""
        return self.model_classes == (() if model.imagenet else tuple(model.class_names))

    def score_matrix(self, probs: torch.Tensor) -> torch.Tensor:
        """(..., labels): each label's score, the sum of its classes' probabilities, for (..., classes) probabilities."""
        if self._matrix is None:  # (classes, labels) membership: one product scores every label
            m = torch.zeros(len(self.model_classes or classes()), len(self.labels))
            for col, idx in enumerate(self.labels.values()):
                m[list(idx), col] = 1.0
            self._matrix = m
        return probs.detach().float() @ self._matrix

    def scores(self, probs: torch.Tensor) -> dict[str, float]:
        """Each label's score for one image's (1000,) probabilities."""
        return dict(zip(self.labels, self.score_matrix(probs).tolist()))

    def best_class(self, label: str, probs: torch.Tensor) -> int:
        """The label's most probable class: the one to localize."""
        idx = list(self.labels[label])
        return idx[int(probs[idx].argmax())]

    def candidates(self, image_label: str) -> list[str]:
        """The labels an image-level label (a folder name, a CSV cell) narrows the search to.

        A user label by name (case-insensitive); else the labels sharing a class with what the text
        names in ImageNet ("n02085620", "dog"). Empty: the text says nothing about this map.
        """
        q = image_label.strip().lower()
        exact = [n for n in self.labels if n.lower() == q]
        if exact or self.model_classes:
            return exact
        try:
            wanted = resolve_entry(image_label)
        except LabelMapError:
            return []
        return [n for n, idx in self.labels.items() if wanted & set(idx)]

    def describe(self) -> list[str]:
        """One line per label: its size and first classes, to show the user what the map means."""
        names = list(self.model_classes) or [c.name for c in classes()]
        out = []
        for label, idx in self.labels.items():
            first = ", ".join(names[i] for i in idx[:4])
            more = f", ... ({len(idx)} classes)" if len(idx) > 4 else ""
            out.append(f"{label}: {first}{more}")
        return out + [f"⚠️ {note}" for note in self.notes()]

    def notes(self) -> list[str]:
        """What the user may not have meant: classes that several labels hold (a photo of one scores in each)."""
        holders: dict[int, list[str]] = {}
        for label, idx in self.labels.items():
            for i in idx:
                holders.setdefault(i, []).append(label)
        shared = [(i, labels) for i, labels in holders.items() if len(labels) > 1]
        if not shared:
            return []
        names = list(self.model_classes) or [c.name for c in classes()]
        listed = "; ".join(f"{names[i]} ({', '.join(labels)})" for i, labels in shared[:5])
        more = f" and {len(shared) - 5} more" if len(shared) > 5 else ""
        return [(f"classes in two labels or more: {listed}{more}. A photo of one scores in each, and its box gets "
                "the better-scoring label only")]


def load_label_map(source: str | Path | Mapping | None, threshold: float | None = None) -> LabelMap:
    """A map from a file path, parsed data or None (ImageNet's class names); `threshold` overrides the file's."""
    if source is None:
        lm = LabelMap.imagenet()
    elif isinstance(source, Mapping):
        lm = LabelMap.from_spec(source)
    else:
        lm = LabelMap.load(source)
    if threshold is not None:
        lm.threshold = threshold
    return lm
