"""A real `zeroserve up` with iris deployed twice (two revisions, at zero), and a headless chromium."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.zeroserve.console.browser import missing_browser, start_browser
from tests.zeroserve.control.harness import change_model, function_dir
from tests.zeroserve.platform.conftest import FAST_SCALING, Platform, stop_leaving_nothing


@pytest.fixture(scope="module")
def console_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """iris-00001 and iris-00002 (a changed model), scaling within seconds and deployed at zero."""
    root = tmp_path_factory.mktemp("console")
    platform = Platform(root / "data")
    try:
        platform.start()
        source = function_dir(root, "iris", scaling={**FAST_SCALING, "target": 10, "max_scale": 2})
        with platform.client() as client:
            client.deploy(source)
            change_model(source, "the second revision")
            client.deploy(source)
        yield platform
    finally:
        stop_leaving_nothing([platform])  # the platform, and any replica it left behind


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = missing_browser()
    if reason is not None:
        pytest.skip(f"browser tests skipped: {reason}")
    driver = start_browser()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def console(browser: Any, console_platform: Platform) -> Iterator[Any]:
    """The browser signed in to the console, on the functions list; signed out again afterwards."""
    from tests.zeroserve.console.pages import sign_in

    sign_in(browser, console_platform.url, console_platform.token)
    try:
        yield browser
    finally:
        browser.execute_script("sessionStorage.clear()")

