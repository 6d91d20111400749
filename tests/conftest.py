"""Shared fixtures: the real default model (loaded once per session) and the real photos."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SHARED = ROOT.parent / "shared"
DEV_SET = SHARED / "data" / "imagenet-val-dev"


@pytest.fixture(scope="session")
def model():
    from fol_core.models import load_model

    return load_model()


@pytest.fixture(scope="session")
def examples_dir() -> Path:
    return EXAMPLES


@pytest.fixture(scope="session")
def dev_set() -> Path:
    if not (DEV_SET / "Annotations").is_dir():
        pytest.skip("../shared/data/imagenet-val-dev is not present")
    return DEV_SET


@pytest.fixture(scope="module")
def url(tmp_path_factory) -> str:
    """The app served on a free local port for one test module; its sessions' exports go to pytest's temp folder."""
    from browser_support import free_port

    import app

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tempfile, "tempdir", str(tmp_path_factory.mktemp("exports")))
        port = free_port()
        demo = app.serve("127.0.0.1", port, prevent_thread_lock=True, quiet=True)
        yield f"http://127.0.0.1:{port}/"
        demo.close()
