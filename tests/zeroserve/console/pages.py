"""What a user does in the console, as Selenium steps: sign in, open a page, wait for what it shows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
WAIT_SECONDS = 20.0


def wait(driver: Any, condition: Callable[[Any], T], what: str, timeout: float = WAIT_SECONDS) -> T:
    """WebDriverWait (it polls) with a message naming what did not happen, and the page's console log."""
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1,
                             ignored_exceptions=(StaleElementReferenceException,)).until(condition)
    except TimeoutException:
        log = [entry.get("message") for entry in driver.get_log("browser")]
        raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; browser log: {log}") from None


def css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, selector))


def sign_in(driver: Any, url: str, token: str) -> None:
    driver.get(f"{url}/console/")
    field = wait(driver, lambda d: next((e for e in css(d, "#token") if e.is_displayed()), None), "the sign-in form")
    field.clear()
    field.send_keys(token)
    css(driver, "#sign-in-form button[type=submit]")[0].click()
    wait(driver, lambda d: css(d, "#sign-out") and css(d, "#sign-out")[0].is_displayed(), "the console after sign-in")


def open_page(driver: Any, url: str, fragment: str, ready_selector: str) -> None:
    driver.get(f"{url}/console/#{fragment}")
    wait(driver, lambda d: css(d, ready_selector), f"{ready_selector} on #{fragment}")


def split_of(driver: Any, scope: str) -> dict[str, int]:
    """revision -> percent, as the traffic bar under `scope` draws it."""
    return {seg.get_attribute("data-revision"): int(seg.get_attribute("data-percent"))
            for seg in css(driver, f"{scope} .bar .seg")}
