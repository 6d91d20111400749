"""What the web app computes, one module per tab (localize, prelabel, review, dataset_map), as plain
functions free of gradio: app.py only lays out the components and wires them to these.

Each browser session keeps its own files (exports, extracted uploads) in a work folder made here
and removed when the session ends.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

WORKDIR_PREFIX = "fol-session-"


def workdir(current: str | None = None) -> str:
    """The session's work folder: `current`, or a fresh one in the system's temp folder (never in the repository)."""
    return current or tempfile.mkdtemp(prefix=WORKDIR_PREFIX)


def remove_workdir(path: str | None) -> None:
    """Delete a session's work folder when its session ends (only folders `workdir` made)."""
    if path and Path(path).name.startswith(WORKDIR_PREFIX):
        shutil.rmtree(path, ignore_errors=True)
