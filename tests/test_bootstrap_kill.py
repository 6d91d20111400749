"""Nothing lost: processes killed with SIGKILL mid-way keep every decision made, and a killed pre-label run resumes
without redoing or duplicating an image."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from fol_core.bootstrap.prelabel import open_run, run_prelabel
from fol_core.bootstrap.project import DB_NAME, open_project

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")


def _done(folder: Path) -> int:
    """Images pre-labeled so far, read as another process would (the writer may be mid-transaction)."""
    if not (folder / DB_NAME).is_file():
        return 0
    with sqlite3.connect(folder / DB_NAME, timeout=5) as db:
        try:
            return db.execute("SELECT COUNT(*) FROM images WHERE stage != 'new'").fetchone()[0]
        except sqlite3.OperationalError:  # the schema is not there yet
            return 0


def _stamps(folder: Path) -> dict[str, float]:
    """When each image's row was last written."""
    with sqlite3.connect(folder / DB_NAME) as db:
        return dict(db.execute("SELECT key, updated FROM images").fetchall())


def _kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory, examples_dir):
    """A `prelabel` command (CAM, 12 real photos) killed with SIGKILL after a few images."""
    src = tmp_path_factory.mktemp("kill-src")
    for copy in ("a", "b", "c"):
        (src / copy).mkdir()
        for photo in ("chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png"):
            shutil.copy(examples_dir / photo, src / copy / photo)
    out = tmp_path_factory.mktemp("kill-out") / "project"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fol_core", "prelabel", str(src), "--out", str(out), "--method", "cam", "--threads", "1"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    try:
        while _done(out) < 3:
            assert proc.poll() is None, "prelabel ended before it could be killed"
            assert time.monotonic() < deadline, "prelabel made no progress"
            time.sleep(0.05)
    finally:
        _kill(proc)
    return src, out


def test_killed_prelabel_resumes_without_redoing_or_duplicating(killed_run, model):
    src, out = killed_run
    before = {r.key: r for r in open_project(out).images() if r.stage != "new"}
    assert 3 <= len(before) < 12, "killed mid-way"
    stamps = _stamps(out)
    project, new = open_run(str(src), str(out))
    assert new == 0 and len(project.images()) == 12
    summary = run_prelabel(project, model, "cam")
    assert summary.done == 12 - len(before)
    after = {r.key: r for r in project.images()}
    assert len(after) == 12 and all(r.stage in ("proposed", "no_object") for r in after.values())
    restamped = _stamps(out)
    for key, rec in before.items():  # the images done before the kill were not done again
        assert restamped[key] == stamps[key]
        assert after[key].proposals == rec.proposals and after[key].confidence == rec.confidence
    project.close()


WRITER = textwrap.dedent("""
    import sys
    from fol_core.bootstrap.project import open_project
    from fol_core.result import Box
    project = open_project(sys.argv[1])
    ids = [r.id for r in project.images()]
    n = 0
    while True:  # accept every image again and again, each time with a new box, until killed
        for i in ids:
            n += 1
            project.decide(i, "accept", [Box(1.0, 2.0, 10.0 + n, 20.0, "cat", -1, 1.0, "review")])
            print(i, n, flush=True)
""")


def test_decisions_survive_sigkill(killed_run):
    _, out = killed_run
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(out)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    acknowledged: dict[int, int] = {}
    try:
        for line in proc.stdout:
            image_id, n = map(int, line.split())
            acknowledged[image_id] = n
            if n >= 40:
                break
    finally:
        _kill(proc)
    project = open_project(out)  # a new process would open it the same way
    assert project.counts()["accepted"] == 12
    for image_id, n in acknowledged.items():
        rec = project.image(image_id)
        # every acknowledged decision is on disk (a later one may have committed just before the kill)
        assert rec.review == "accepted" and rec.boxes[0].x1 >= 10.0 + n
    assert len(project.decisions()) >= 40
    assert sqlite3.connect(out / DB_NAME).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    project.close()
