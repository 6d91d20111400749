"""What the web app computes, one module per tab (localize, prelabel, review, dataset_map), as plain
functions free of gradio: app.py only lays out the components and wires them to these.

Each browser session keeps its own files (exports, extracted uploads) in a work folder made here
and removed when the session ends. `Access` says what a visitor may reach on this server: which
projects and trained models (a shared folder for a local single-user run, else the session's own), and which
server folders (none unless the operator named a root).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

WORKDIR_PREFIX = "fol-session-"
PROJECTS_PREFIX = "fol-projects-"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
"""Hosts that serve only this machine: a run bound to one is single-user, so its projects may be shared."""


class AccessError(UserError):
    """Something this server does not let a visitor reach; one line for the user."""


def workdir(current: str | None = None) -> str:
    """The session's work folder: `current`, or a fresh one in the system's temp folder (never in the repository)."""
    return current or tempfile.mkdtemp(prefix=WORKDIR_PREFIX)


def remove_workdir(path: str | None) -> None:
    """Delete a session's work folder when its session ends (only folders `workdir` made)."""
    if path and Path(path).name.startswith(WORKDIR_PREFIX):
        shutil.rmtree(path, ignore_errors=True)


def is_shared_by_default(host: str, space: str | None) -> bool:
    """Whether projects are shared when not told: only for a run bound to this machine, outside a Space."""
    return host in LOCAL_HOSTS and not space


@dataclass(frozen=True)
class Access:
    """What a visitor may reach on this server.

    `shared`: every session sees the projects in `projects` (a local, single-user run: they stay in
    exports/). Otherwise each browser session gets its own projects folder in the system's temp folder,
    removed when the session ends (`end_session`): a visitor exports and downloads what they want to keep.
    `folders`: the one server folder whose contents visitors may pre-label or train from (None: server folders
    are off). `models`: the trained models every session may use; a shared run's Train tab writes there, otherwise
    a session's models go in its own folder (`models_root`), so that no visitor replaces another's.
    """

    projects: Path
    shared: bool = True
    folders: Path | None = None
    models: Path = Path("models")

    def root(self, session: str | None) -> Path:
        """The projects folder this browser session sees."""
        if self.shared:
            return self.projects
        if not session:
            raise AccessError("No browser session: reload the page.")
        digest = hashlib.sha256(session.encode("utf-8")).hexdigest()[:24]
        return Path(tempfile.gettempdir()) / f"{PROJECTS_PREFIX}{digest}"

    def models_root(self, session: str | None) -> Path:
        """Where this browser session's Train tab writes models (removed with the session unless shared)."""
        return self.models if self.shared else self.root(session) / ".models"  # no project can be called that

    def end_session(self, session: str | None) -> None:
        """Drop a per-session projects folder and the projects opened from it, when its session ends."""
        if self.shared or not session:
            return
        from . import review

        root = self.root(session)
        review.forget_under(root)
        shutil.rmtree(root, ignore_errors=True)
