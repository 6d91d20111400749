"""What the browser tests share: Debian's Chromium (required in CI), a free port, a page on a URL."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"


def require_chromium() -> None:
    """Skip the calling test module where Chromium is absent, unless FOL_REQUIRE_BROWSER=1 (CI): then run and fail."""
    if not Path(CHROMIUM).exists() and os.environ.get("FOL_REQUIRE_BROWSER") != "1":
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def chromium_page(url: str) -> Iterator:
    """A headless Chromium page (laptop-sized window) open on `url`."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 1000})
            page.set_default_timeout(120_000)
            page.goto(url)
            yield page
        finally:
            browser.close()
