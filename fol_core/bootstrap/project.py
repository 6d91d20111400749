"""The on-disk project: one SQLite database (WAL mode) inside the project's folder, written as decisions are made.

Every pre-label result and every review decision is one SQLite transaction, committed before the
call returns (synchronous=FULL): kill the process at any moment and the database holds every
decision made before, and none half-made. A marker file says which project owns the folder, so
that no run or export writes over another project's files without being told to.

Per image: `stage` is what the pre-labeler did (new, proposed, no_object, failed), `review` what
the reviewer decided (NULL while pending, accepted, rejected); `proposals` are the pre-labeler's
boxes and `boxes` the accepted ones, both in the photo's own pixels. `decisions` is an append-only
journal of every review action.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from PIL import Image

from ..errors import UserError
from ..formats import AnnotatedImage
from ..labelmap import LabelMap, load_label_map
from ..paths import unique_name
from ..result import Box
from .sources import Source, SourceItem, open_source, same_source

DB_NAME = "project.sqlite"
MARKER = "fol-project.json"
"""Marks a folder as a fol project: {"project": id, "created": time, "source": spec}."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    file_name TEXT NOT NULL UNIQUE,
    image_label TEXT,
    width INTEGER,
    height INTEGER,
    stage TEXT NOT NULL DEFAULT 'new',
    review TEXT,
    confidence REAL,
    proposals TEXT NOT NULL DEFAULT '[]',
    boxes TEXT,
    top5 TEXT,
    label_scores TEXT,
    error TEXT,
    method TEXT,
    seconds REAL,
    updated REAL
);
CREATE INDEX IF NOT EXISTS images_stage ON images(stage);
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY,
    image_id INTEGER NOT NULL REFERENCES images(id),
    action TEXT NOT NULL,
    boxes TEXT,
    at REAL NOT NULL
);
"""
DECISION_COLUMNS = {"before": "TEXT", "undoes": "INTEGER"}
"""Columns added to the journal after its first release (projects made before get them on opening); a row
from before has no `before` and cannot be undone."""

class Stage(StrEnum):
    """What the pre-labeler did with an image."""

    NEW = "new"
    PROPOSED = "proposed"
    NO_OBJECT = "no_object"
    FAILED = "failed"


class Review(StrEnum):
    """What the reviewer decided (NULL in the database while the image is pending)."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"


class Status(StrEnum):
    """An image's place in the workflow: the review's decision, else where the pre-labeler left it."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    NEW = "new"
    FAILED = "failed"


class Action(StrEnum):
    """A reviewer's action, as the decisions journal records it."""

    ACCEPT = "accept"
    REJECT = "reject"
    SKIP = "skip"
    RESET = "reset"
    UNDO = "undo"


REVIEWABLE = (Stage.PROPOSED, Stage.NO_OBJECT)
"""Stages the review queue shows."""
_REVIEWABLE_SQL = f"stage IN ('{Stage.PROPOSED}', '{Stage.NO_OBJECT}')"


class ProjectError(UserError):
    """A project that cannot be opened or created here; one line for the user."""


@dataclass
class ImageRecord:
    """One image of the project, as stored."""

    id: int
    key: str
    file_name: str
    image_label: str | None
    width: int | None
    height: int | None
    stage: str
    review: str | None
    confidence: float | None
    proposals: list[Box] = field(default_factory=list)
    boxes: list[Box] | None = None
    top5: list[dict] = field(default_factory=list)
    label_scores: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    decision: int | None = None
    """The journal row of the decision that returned this record (Project.decide / undo)."""

    @property
    def status(self) -> Status:
        if self.review:
            return Status(self.review)
        return Status.PENDING if self.stage in REVIEWABLE else Status(self.stage)

    def current_boxes(self) -> list[Box]:
        """What the reviewer sees: the accepted boxes once reviewed, else the proposals."""
        return list(self.boxes) if self.boxes is not None else list(self.proposals)


@dataclass
class PrelabelResult:
    """What the pre-labeler stores for one image (`save_prelabels`)."""

    image_id: int
    stage: str
    width: int | None = None
    height: int | None = None
    proposals: list[Box] = field(default_factory=list)
    confidence: float | None = None
    top5: list[dict] = field(default_factory=list)
    label_scores: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    method: str | None = None
    seconds: float | None = None


def _boxes_json(boxes: Iterable[Box]) -> str:
    return json.dumps([b.to_dict() for b in boxes], ensure_ascii=False)


def _boxes(text: str | None) -> list[Box] | None:
    return None if text is None else [Box.from_dict(d) for d in json.loads(text)]


def read_marker(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class Project:
    """A project folder: its database, its source and its label map. Safe to share between threads."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        marker = read_marker(self.folder)
        if marker is None or not (self.folder / DB_NAME).is_file():
            raise ProjectError(f"{folder} is not a fol project (no {MARKER} and {DB_NAME})")
        self.id: str = marker["project"]
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.folder / DB_NAME, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        have = {r["name"] for r in self._db.execute("PRAGMA table_info(decisions)")}
        for column, kind in DECISION_COLUMNS.items():
            if column not in have:
                self._db.execute(f"ALTER TABLE decisions ADD COLUMN {column} {kind}")
        self._source: Source | None = None
        self._label_map: tuple[str, LabelMap] | None = None

    # --- creation -------------------------------------------------------------------------------

    @classmethod
    def create(cls, folder: str | Path, source: dict, overwrite: bool = False) -> Project:
        """Open the project in `folder`, or make one there; refuse another project's folder unless overwrite.

        The same source reopens the same project (so a run resumes). A folder that holds another
        project, or files that are not a project, is refused; with overwrite, its images and
        decisions (and an extracted zip) are dropped and the project starts again; no other file is touched.
        """
        folder = Path(folder)
        marker = read_marker(folder)
        if marker is None:
            if folder.is_dir() and any(folder.iterdir()) and not overwrite:
                raise ProjectError(f"{folder} is not empty and is not a fol project: choose another folder, or overwrite")
            folder.mkdir(parents=True, exist_ok=True)
            marker = {"project": uuid.uuid4().hex, "created": time.time(), "source": source}
            (folder / MARKER).write_text(json.dumps(marker, indent=1), encoding="utf-8")
            sqlite3.connect(folder / DB_NAME).close()
            project = cls(folder)
            project.set_meta("source", source)
            return project
        if not (folder / DB_NAME).is_file():
            sqlite3.connect(folder / DB_NAME).close()
        project = cls(folder)
        if not same_source(project.meta("source", source), source):
            if not overwrite:
                raise ProjectError(
                    f"{folder} holds the project of {_describe(project.meta('source'))}: "
                    "choose another folder, or overwrite to start it again"
                )
            with project.transaction() as db:
                db.execute("DELETE FROM decisions")
                db.execute("DELETE FROM images")
                db.execute("DELETE FROM meta WHERE key IN ('settings', 'improve')")  # the old images' method
            if (project.meta("source") or {}).get("kind") == "zip":  # the old upload's extracted images
                shutil.rmtree(folder / "source", ignore_errors=True)
            project.set_meta("source", source)
            marker["source"] = source
            (folder / MARKER).write_text(json.dumps(marker, indent=1), encoding="utf-8")
        return project

    # --- plumbing -------------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: committed on exit, rolled back on error."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, args: tuple | dict = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def meta(self, key: str, default: Any = None) -> Any:
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return json.loads(rows[0]["value"]) if rows else default

    def set_meta(self, key: str, value: Any) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, json.dumps(value)))

    # --- source and labels ----------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.folder.name

    def source(self) -> Source:
        """The project's source, reopened from its stored spec (once per Project)."""
        if self._source is None:
            self._source = open_source(self.meta("source"), self.folder)
        return self._source

    def use_source(self, source: Source) -> None:
        """Keep an already opened source (so it is not loaded twice)."""
        self._source = source

    @property
    def label_map(self) -> LabelMap:
        """The stored map, built again only when what is stored changes (another process may change it)."""
        spec, threshold = self.meta("label_map"), self.meta("threshold")
        key = json.dumps([spec, threshold])
        if self._label_map is None or self._label_map[0] != key:
            self._label_map = (key, load_label_map(spec) if spec else load_label_map(None, threshold))
        return self._label_map[1]

    def set_label_map(self, label_map: LabelMap) -> None:
        """Store the map (as written by the user; None for ImageNet's names) for later runs and the review."""
        spec = {"labels": label_map.spec, "threshold": label_map.threshold} if label_map.spec else None
        if spec and label_map.model_classes:
            spec["classes"] = list(label_map.model_classes)
        self.set_meta("label_map", spec)
        self.set_meta("threshold", label_map.threshold)
        if label_map.spec:
            with self.transaction() as db:
                self._add_labels(db, label_map.names)

    def labels(self) -> list[str]:
        """The project's label set in a fixed order, which exports number their classes by: the user map's
        labels, then every other label as it first appeared on a box. It only grows, so ids never change."""
        known = self.meta("labels")
        return self._labels_so_far() if known is None else known

    def _labels_so_far(self) -> list[str]:
        """For a project from before the list was kept: its map's labels, then its boxes' labels by image."""
        mapped = self.label_map.names if self.meta("label_map") else []
        used = (b.label for r in self.images() for b in r.proposals + (r.boxes or []))
        return list(dict.fromkeys([*mapped, *used]))

    def _add_labels(self, db: sqlite3.Connection, names: Iterable[str]) -> None:
        row = db.execute("SELECT value FROM meta WHERE key = 'labels'").fetchone()
        known = json.loads(row["value"]) if row else self._labels_so_far()
        new = [n for n in dict.fromkeys(names) if n not in known]
        if new or not row:
            db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('labels', ?)", (json.dumps(known + new),))

    def add_items(self, items: Iterable[SourceItem]) -> int:
        """Register the source's images (those already known are left as they are); returns how many are new."""
        with self.transaction() as db:
            known = {r["key"] for r in db.execute("SELECT key FROM images")}
            taken = {Path(r["file_name"]).stem.casefold() for r in db.execute("SELECT file_name FROM images")}
            new = 0
            for item in items:
                if item.key in known:
                    continue
                known.add(item.key)
                db.execute(
                    "INSERT INTO images(key, file_name, image_label, updated) VALUES (?, ?, ?, ?)",
                    (item.key, unique_name(item.name, taken), item.label, time.time()),
                )
                new += 1
        return new

    # --- pre-labeling ---------------------------------------------------------------------------

    def retry_failed(self) -> int:
        """Put the images whose pre-labeling failed (a corrupt file, a read error) back to be pre-labeled: a file
        fixed since is then labelled, one still broken fails again in a moment. Returns how many."""
        with self.transaction() as db:
            return db.execute("UPDATE images SET stage = ?, error = NULL WHERE stage = ? AND review IS NULL",
                              (Stage.NEW, Stage.FAILED)).rowcount

    def todo(self, limit: int | None = None) -> list[ImageRecord]:
        """Images not pre-labeled yet, in source order."""
        sql = "SELECT * FROM images WHERE stage = ? ORDER BY id" + (f" LIMIT {int(limit)}" if limit else "")
        return [self._record(r) for r in self._query(sql, (Stage.NEW,))]

    def save_prelabel(
        self, image_id: int, *, stage: str, width: int | None = None, height: int | None = None,
        proposals: list[Box] | None = None, confidence: float | None = None, top5: list[dict] | None = None,
        label_scores: dict[str, float] | None = None, error: str | None = None, method: str | None = None,
        seconds: float | None = None, unreviewed_only: bool = False,
    ) -> None:
        """One image's pre-label result, in one transaction (`unreviewed_only`: left as it is if the reviewer
        has decided on it meanwhile)."""
        self.save_prelabels([PrelabelResult(
            image_id, stage, width, height, proposals or [], confidence, top5 or [], label_scores or {}, error,
            method, seconds,
        )], unreviewed_only)

    def save_prelabels(self, results: Iterable[PrelabelResult], unreviewed_only: bool = False) -> None:
        """A batch of images' pre-label results in one transaction: all of them are on disk when it returns,
        or (killed before) none; one commit per batch keeps the writes at the pace of a batched engine.
        `unreviewed_only`: an image the reviewer has decided on meanwhile is left as it is."""
        with self.transaction() as db:
            for r in results:
                self._add_labels(db, (b.label for b in r.proposals))
                db.execute(
                    "UPDATE images SET stage=?, width=?, height=?, proposals=?, confidence=?, top5=?, label_scores=?,"
                    " error=?, method=?, seconds=?, updated=? WHERE id=?" + (" AND review IS NULL" if unreviewed_only else ""),
                    (
                        r.stage, r.width, r.height, _boxes_json(r.proposals), r.confidence, json.dumps(r.top5),
                        json.dumps(r.label_scores), r.error, r.method, r.seconds, time.time(), r.image_id,
                    ),
                )

    # --- review ---------------------------------------------------------------------------------

    def decide(self, image_id: int, action: Action | str, boxes: list[Box] | None = None) -> ImageRecord:
        """Record a review decision at once: accept (with the boxes as edited), reject, skip or reset.

        The returned record's `decision` is the journal row, which `undo` takes."""
        action = Action(action)
        if action == Action.UNDO:
            raise ProjectError("undo takes the decision to revert: Project.undo(decision)")
        now = time.time()
        with self.transaction() as db:
            before = self._state(db, image_id)
            if action == Action.ACCEPT:
                self._add_labels(db, (b.label for b in boxes or []))
                db.execute("UPDATE images SET review=?, boxes=?, updated=? WHERE id=?",
                           (Review.ACCEPTED, _boxes_json(boxes or []), now, image_id))
            elif action == Action.REJECT:
                db.execute("UPDATE images SET review=?, updated=? WHERE id=?", (Review.REJECTED, now, image_id))
            elif action == Action.RESET:
                db.execute("UPDATE images SET review=NULL, boxes=NULL, updated=? WHERE id=?", (now, image_id))
            row = db.execute(
                "INSERT INTO decisions(image_id, action, boxes, at, before) VALUES (?, ?, ?, ?, ?)",
                (image_id, action, None if boxes is None else _boxes_json(boxes), now, json.dumps(before)),
            ).lastrowid
        rec = self.image(image_id)
        rec.decision = row
        return rec

    def undo(self, decision: int) -> ImageRecord:
        """Revert one journaled decision: the image gets back the review state and boxes it had before it.

        The undo is journaled too (action "undo", `undoes` = the row). Refused, with one line, for an undo row,
        a decision already undone, one from before undo was recorded, or one the image has changed since
        (another decision on it that is still in force)."""
        now = time.time()
        with self.transaction() as db:
            row = db.execute("SELECT * FROM decisions WHERE id = ?", (decision,)).fetchone()
            if row is None:
                raise ProjectError(f"no decision {decision} in this project")
            if row["action"] == Action.UNDO:
                raise ProjectError("an undo cannot be undone here: decide the image again")
            later = db.execute("SELECT * FROM decisions WHERE image_id = ? AND id > ? ORDER BY id",
                               (row["image_id"], decision)).fetchall()
            undone = {r["undoes"] for r in later if r["undoes"] is not None}
            if decision in undone:
                raise ProjectError("that decision is already undone")
            if row["before"] is None:
                raise ProjectError("that decision was made before undo was recorded: decide the image again")
            if any(r["action"] not in (Action.SKIP, Action.UNDO) and r["id"] not in undone for r in later):
                raise ProjectError("the image was decided again since: undo that decision first")
            before, now_state = json.loads(row["before"]), self._state(db, row["image_id"])
            db.execute("UPDATE images SET review=?, boxes=?, updated=? WHERE id=?",
                       (before["review"], before["boxes"], now, row["image_id"]))
            new = db.execute(
                "INSERT INTO decisions(image_id, action, boxes, at, before, undoes) VALUES (?, ?, ?, ?, ?, ?)",
                (row["image_id"], Action.UNDO, before["boxes"], now, json.dumps(now_state), decision),
            ).lastrowid
        rec = self.image(row["image_id"])
        rec.decision = new
        return rec

    @staticmethod
    def _state(db: sqlite3.Connection, image_id: int) -> dict:
        """An image's review state as the journal keeps it: {"review": ..., "boxes": JSON text or None}."""
        found = db.execute("SELECT review, boxes FROM images WHERE id = ?", (image_id,)).fetchone()
        if found is None:
            raise ProjectError(f"no image {image_id} in this project")
        return {"review": found["review"], "boxes": found["boxes"]}

    def image(self, image_id: int) -> ImageRecord:
        rows = self._query("SELECT * FROM images WHERE id = ?", (image_id,))
        if not rows:
            raise ProjectError(f"no image {image_id} in this project")
        return self._record(rows[0])

    def images(self) -> list[ImageRecord]:
        return [self._record(r) for r in self._query("SELECT * FROM images ORDER BY id")]

    def file_names(self) -> dict[int, str]:
        """Every image's file name by id, in one query (no boxes parsed)."""
        return {r["id"]: r["file_name"] for r in self._query("SELECT id, file_name FROM images")}

    def open(self, file_name: str) -> Image.Image:
        """The photo the project calls `file_name` (ProjectError when it has none)."""
        rows = self._query("SELECT key FROM images WHERE file_name = ?", (file_name,))
        if not rows:
            raise ProjectError(f"no image {file_name!r} in this project")
        return self.source().open(rows[0]["key"])

    def queue(self, order: str = "confidence", status: Status | str = "all") -> list[int]:
        """Image ids to review: order "confidence" (least sure first) or "name"; status "all" or one status.

        Only images the pre-labeler has seen (proposed or no object found) are queued.
        """
        where, args = _REVIEWABLE_SQL, ()
        if status == Status.PENDING:
            where += " AND review IS NULL"
        elif status in (Status.ACCEPTED, Status.REJECTED):
            where, args = where + " AND review = ?", (status,)
        sort = "COALESCE(confidence, 0), id" if order == "confidence" else "file_name COLLATE NOCASE, id"
        return [r["id"] for r in self._query(f"SELECT id FROM images WHERE {where} ORDER BY {sort}", args)]

    def counts(self) -> dict[str, int]:
        """accepted, rejected, pending (pre-labeled, not reviewed), new (not pre-labeled), failed, no_object, total."""
        row = self._query(
            "SELECT COUNT(*) AS total, SUM(review = :accepted) AS accepted, SUM(review = :rejected) AS rejected,"
            f" SUM(review IS NULL AND {_REVIEWABLE_SQL}) AS pending, SUM(stage = :new) AS new,"
            " SUM(stage = :failed) AS failed, SUM(stage = :no_object) AS no_object FROM images",
            {"accepted": Review.ACCEPTED, "rejected": Review.REJECTED, "new": Stage.NEW, "failed": Stage.FAILED,
             "no_object": Stage.NO_OBJECT},
        )[0]
        return {k: int(v or 0) for k, v in dict(row).items()}

    def decisions(self, image_id: int | None = None) -> list[dict]:
        sql = "SELECT * FROM decisions" + (" WHERE image_id = ?" if image_id is not None else "") + " ORDER BY id"
        return [dict(r) for r in self._query(sql, (image_id,) if image_id is not None else ())]

    def annotated(self, include_proposals: bool = False) -> list[tuple[ImageRecord, AnnotatedImage]]:
        """What an export holds: accepted images with their boxes; with include_proposals, also the
        unreviewed images that have proposals. Rejected images are left out."""
        out = []
        for rec in self.images():
            if rec.review == Review.ACCEPTED:
                boxes = rec.boxes or []
            elif include_proposals and rec.review is None and rec.proposals:
                boxes = rec.proposals
            else:
                continue
            out.append((rec, AnnotatedImage(rec.file_name, rec.width or 0, rec.height or 0, list(boxes))))
        return out

    def _record(self, r: sqlite3.Row) -> ImageRecord:
        return ImageRecord(
            r["id"], r["key"], r["file_name"], r["image_label"], r["width"], r["height"], r["stage"], r["review"],
            r["confidence"], _boxes(r["proposals"]) or [], _boxes(r["boxes"]), json.loads(r["top5"] or "[]"),
            json.loads(r["label_scores"] or "{}"), r["error"],
        )


def _describe(source: dict | None) -> str:
    if not source:
        return "an unknown source"
    return source.get("root") or source.get("path") or str(source)


def open_project(folder: str | Path) -> Project:
    """An existing project (raises ProjectError with one line when the folder is not one)."""
    return Project(folder)
