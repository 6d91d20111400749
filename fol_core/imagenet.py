"""ImageNet-1k class names, offline, and lookup of a class by index, WordNet id, name or synonym."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from .errors import UserError


@dataclass(frozen=True)
class ImageNetClass:
    index: int
    wnid: str
    names: tuple[str, ...]

    @property
    def name(self) -> str:
        """The first synonym: the short label shown on boxes."""
        return self.names[0]


@lru_cache(maxsize=1)
def classes() -> tuple[ImageNetClass, ...]:
    """The 1000 classes in the standard index order (sorted WordNet ids, as torchvision)."""
    text = resources.files("fol_core.data").joinpath("synset_words.txt").read_text(encoding="utf-8")
    out = []
    for index, line in enumerate(text.strip().splitlines()):
        wnid, _, names = line.partition(" ")
        out.append(ImageNetClass(index, wnid, tuple(n.strip() for n in names.split(","))))
    return tuple(out)


def class_names() -> list[str]:
    return [c.name for c in classes()]


@lru_cache(maxsize=1)
def _lookup() -> dict[str, int]:
    table: dict[str, int] = {}
    for c in classes():
        table.setdefault(c.wnid.lower(), c.index)
    # Full names first, then synonyms, so "crane" keeps its first (bird) sense.
    for c in classes():
        table.setdefault(c.name.lower(), c.index)
    for c in classes():
        for n in c.names[1:]:
            table.setdefault(n.lower(), c.index)
    return table


def rank_names(query: str, entries: Sequence[Sequence[str]]) -> list[int]:
    """The positions of the entries (each a class's names) matching `query`, best first: a name that is the query,
    then the query as a whole word of a name ("cup" in "measuring cup", "cat" in "tiger cat"), then as a word's
    start, then anywhere ("porcupine", "bullfrog, Rana catesbeiana"); ties in the entries' order. All of them for
    an empty query. ImageNet's classes (`rank`) and a trained model's own are searched alike."""
    q = " ".join(query.lower().split())
    if not q:
        return list(range(len(entries)))
    whole, start = re.compile(rf"\b{re.escape(q)}\b"), re.compile(rf"\b{re.escape(q)}")
    ranked = []
    for i, entry in enumerate(entries):
        names = [n.lower() for n in entry]
        tier = (0 if q in names else 1 if any(whole.search(n) for n in names)
                else 2 if any(start.search(n) for n in names) else 3 if any(q in n for n in names) else None)
        if tier is not None:
            ranked.append((tier, i))
    return [i for _, i in sorted(ranked)]


def rank(query: str) -> list[ImageNetClass]:
    """The ImageNet classes matching `query` (by a name or the index), best first (`rank_names`)."""
    every = classes()
    return [every[i] for i in rank_names(query, [[*c.names, str(c.index)] for c in every])]


class UnknownClassError(UserError):
    """A class query that names no ImageNet class."""


def resolve_class(query: str | int) -> int:
    """An ImageNet index from an index, a WordNet id, a name or any synonym of the label."""
    if isinstance(query, int):
        if 0 <= query < 1000:
            return query
        raise UnknownClassError(f"class index {query} is outside 0..999")
    q = str(query).strip().lower()
    if q.isdigit():
        return resolve_class(int(q))
    table = _lookup()
    if q in table:
        return table[q]
    q = q.replace("_", " ")
    if q in table:
        return table[q]
    close = [c.name for c in rank(q)[:5]] or [  # no word of it in a name: a typo ("cofee mug")
        classes()[table[n]].name for n in difflib.get_close_matches(q, list(table), n=3, cutoff=0.8)]
    hint = f" (did you mean: {', '.join(dict.fromkeys(close))}?)" if close else ""
    raise UnknownClassError(f"no ImageNet class is called {query!r}{hint}")
