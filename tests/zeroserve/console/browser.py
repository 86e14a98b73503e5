"""Debian's chromium, headless, driven by Selenium through Debian's chromium-driver (no browser download).

`make test` installs both with apt when it runs as root and they are missing; without them the browser
tests skip, naming what is missing.
"""

from __future__ import annotations

import importlib.util
import shutil
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser")


def missing_browser() -> str | None:
    """What stops a browser test here (None: nothing), naming the tool and how to install it."""
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (pip install -e '.[dev]')"
    if not any(shutil.which(name) for name in CHROMIUM_NAMES):
        return "chromium is not installed (apt-get install chromium chromium-driver)"
    if shutil.which("chromedriver") is None:
        return "chromedriver is not installed (apt-get install chromium-driver)"
    return None


def start_browser(width: int = 1280, height: int = 900) -> Any:
    """A headless chromium window of `width` x `height` CSS pixels; the caller quits it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary = next(path for name in CHROMIUM_NAMES if (path := shutil.which(name)))
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    # --no-sandbox: chromium refuses to start as root with its sandbox (CI and this machine run tests as root).
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--disable-extensions", "--no-first-run", f"--window-size={width},{height}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
