"""Shared fixtures: the real default model (loaded once per session) and the real photos."""

from __future__ import annotations

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
