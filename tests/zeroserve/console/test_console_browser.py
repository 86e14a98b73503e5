"""The console in a real browser (Debian's chromium) against a real `zeroserve up` (issue 18's acceptance).

Sign in and out, the functions list, a 90/10 split set through the form (and the API's error shown for a
bad one), a cold start drawn as replicas 0 -> 1 on the chart, a failed build's log. Every wait polls.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.zeroserve.console.pages import css, open_page, sign_in, split_of, wait
from tests.zeroserve.control.harness import function_dir
from tests.zeroserve.platform.conftest import Platform, wait_for
from zeroserve.client import ApiError

IRIS_BODY = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}


def test_sign_in_shows_the_functions_and_sign_out_forgets_the_token(console: Any, console_platform: Platform):
    row = wait(console, lambda d: css(d, 'tr[data-function="iris"]'), "iris in the functions list")[0]
    assert "iris-00002" in row.text  # the latest revision
    assert "http://iris.localhost:" in row.text  # its function URL
    assert re.search(r"\b(at zero|ready|starting)\b", row.text), row.text
    assert console_platform.token not in console.current_url  # the token never travels in a URL
    assert console.execute_script("return sessionStorage.getItem('zeroserve.token')") == console_platform.token

    css(console, "#sign-out")[0].click()
    wait(console, lambda d: css(d, "#token")[0].is_displayed(), "the sign-in form after signing out")
    assert console.execute_script("return sessionStorage.getItem('zeroserve.token')") is None
    assert not css(console, 'tr[data-function="iris"]')  # nothing of the platform is left on screen


def test_a_wrong_token_is_refused_with_the_apis_message(browser: Any, console_platform: Platform):
    browser.get(f"{console_platform.url}/console/")
    field = wait(browser, lambda d: next((e for e in css(d, "#token") if e.is_displayed()), None), "the sign-in form")
    field.send_keys("not-the-token")
    css(browser, "#sign-in-form button[type=submit]")[0].click()
    message = wait(browser, lambda d: css(d, "#sign-in-error")[0].text, "the refusal")
    assert "unauthorized" in message.lower() or "token" in message.lower(), message
    assert browser.execute_script("return sessionStorage.getItem('zeroserve.token')") is None


def test_keyboard_only_sign_in_and_navigation_keep_the_focus_across_refreshes(browser: Any,
                                                                             console_platform: Platform):
    from selenium.webdriver.common.keys import Keys

    browser.get(f"{console_platform.url}/console/")
    field = wait(browser, lambda d: next((e for e in css(d, "#token") if e.is_displayed()), None), "the sign-in form")
    assert browser.switch_to.active_element == field  # the form has the focus from the start
    field.send_keys(console_platform.token, Keys.ENTER)
    wait(browser, lambda d: css(d, 'tr[data-function="iris"] a'), "the functions list")
    try:
        for _ in range(20):  # Tab through the page until the function's link has the focus
            if (browser.switch_to.active_element.get_attribute("href") or "").endswith("#/functions/iris"):
                break
            browser.switch_to.active_element.send_keys(Keys.TAB)
        assert (browser.switch_to.active_element.get_attribute("href") or "").endswith("#/functions/iris")
        updated = css(browser, "#live")[0].text
        wait(browser, lambda d: css(d, "#live")[0].text != updated, "the list's next refresh")
        # The rows were redrawn; the link the user was on still has the focus.
        assert (browser.switch_to.active_element.get_attribute("href") or "").endswith("#/functions/iris")
        browser.switch_to.active_element.send_keys(Keys.ENTER)
        wait(browser, lambda d: css(d, "#traffic-form form"), "the function's page, opened from the keyboard")
    finally:
        browser.execute_script("sessionStorage.clear()")


def test_the_split_form_sets_90_10_and_the_bar_follows(console: Any, console_platform: Platform):
    open_page(console, console_platform.url, "/functions/iris", "#traffic-form form")
    assert split_of(console, "#traffic-bar") == {"iris-00002": 100}

    # A split that does not sum to 100: the API's own message, and the route unchanged.
    set_split(console, {"iris-00001": 50, "iris-00002": 40})
    error = wait(console, lambda d: css(d, "#traffic-error")[0].text, "the API's error for a split of 90 %")
    assert "100" in error, error
    assert split_of(console, "#traffic-bar") == {"iris-00002": 100}

    set_split(console, {"iris-00001": 90, "iris-00002": 10})
    wait(console, lambda d: split_of(d, "#traffic-bar") == {"iris-00001": 90, "iris-00002": 10}, "the bar at 90/10")
    with console_platform.client() as client:
        percents = {t["revision"]: t["percent"] for t in client.traffic("iris")["traffic"]["targets"]}
    assert percents == {"iris-00001": 90, "iris-00002": 10}

    open_page(console, console_platform.url, "/functions", 'tr[data-function="iris"] .bar')
    assert split_of(console, 'tr[data-function="iris"]') == {"iris-00001": 90, "iris-00002": 10}


def test_a_cold_start_draws_replicas_going_from_0_to_1(console: Any, console_platform: Platform):
    wait_for(lambda: all(r["ready"] == 0 for r in console_platform.status("iris")["revisions"]),
             "iris at zero", timeout=30)
    open_page(console, console_platform.url, "/functions/iris", "#chart svg[data-ready]")
    wait(console, lambda d: ready_series(d)[-2:] == [0, 0], "the chart drawing zero ready replicas")

    response = httpx.post(f"{console_platform.url}/fn/iris/v2/models/iris/infer", json=IRIS_BODY, timeout=60)
    assert response.status_code == 200, response.text
    assert response.headers.get("zeroserve-cold-start") == "true", response.headers  # it did start a replica

    def went_up(driver: Any) -> bool:
        series = ready_series(driver)
        return 0 in series and 1 in series[series.index(0):]
    wait(console, went_up, "replicas 0 -> 1 on the chart")
    wait(console, lambda d: re.search(r"now: [1-9] ready", css(d, "#chart-summary")[0].text), "the ready count")


def test_a_failed_builds_log_is_shown(console: Any, console_platform: Platform, tmp_path):
    from selenium.webdriver.common.keys import Keys

    broken = function_dir(tmp_path, "iris", scaling={"initial_scale": 0})
    (broken / "model.onnx").unlink()
    with console_platform.client() as client, pytest.raises(ApiError, match="model.onnx"):
        client.deploy(broken)

    open_page(console, console_platform.url, "/functions/iris", "#failed-builds")
    entry = wait(console, lambda d: css(d, "#failed-builds li[data-build] details"), "the failed build")[0]
    summary = entry.find_element("css selector", "summary")
    assert "build failed" in summary.text and "model.onnx" in summary.text, summary.text  # the message
    console.execute_script("arguments[0].focus()", summary)  # from the keyboard: Enter on the focused summary
    console.switch_to.active_element.send_keys(Keys.ENTER)
    log = wait(console, lambda d: entry.find_element("css selector", "pre").text, "the failed build's log")
    # A line of the build log itself (the step that failed), not only the message.
    assert re.search(r"^\[\d+/\d+\] files FAILED .*model\.onnx", log, re.MULTILINE), log
    assert re.search(r"^\[1/\d+\] manifest ok", log, re.MULTILINE), log  # the steps before it, too


def set_split(driver: Any, percents: dict[str, int]) -> None:
    for revision, percent in percents.items():
        row = css(driver, f'#traffic-form .target-row[data-ref="{revision}"]')[0]
        field = row.find_element("css selector", "input[type=number]")
        field.clear()
        field.send_keys(str(percent))
    css(driver, "#traffic-form button[type=submit]")[0].click()


def ready_series(driver: Any) -> list[int]:
    charts = css(driver, "#chart svg[data-ready]")
    raw = charts[0].get_attribute("data-ready") if charts else ""
    return [int(v) for v in raw.split(",") if v]



def test_a_token_scoped_to_the_function_sees_its_page_and_the_apis_refusals(browser: Any,
                                                                           console_platform: Platform):
    with console_platform.client() as client:
        token = client.create_token("read", ["iris"])["token"]
    try:
        sign_in(browser, console_platform.url, token)
        refusal = wait(browser, lambda d: css(d, "#view .error"), "the list's refusal")[0].text
        assert "forbidden" in refusal.lower(), refusal  # a token for iris alone may not list every function
        open_page(browser, console_platform.url, "/functions/iris", "#traffic-form form")
        assert split_of(browser, "#traffic-bar")  # it reads iris
        css(browser, "#traffic-form button[type=submit]")[0].click()
        error = wait(browser, lambda d: css(d, "#traffic-error")[0].text, "the API's refusal of a change")
        assert "forbidden" in error.lower() and "read" in error, error
    finally:
        browser.execute_script("sessionStorage.clear()")


TALKER = '''
import numpy as np


class Talker:
    inputs = [{"name": "x", "datatype": "FP32", "shape": [-1]}]
    outputs = [{"name": "x", "datatype": "FP32", "shape": [-1]}]

    def predict(self, inputs):
        print(f"talker saw {float(inputs['x'].sum()):g}", flush=True)
        return {"x": inputs["x"]}
'''


def test_the_logs_follow_what_a_replica_prints(console: Any, console_platform: Platform, tmp_path):
    source = tmp_path / "talker"
    source.mkdir()
    (source / "handler.py").write_text(TALKER)
    (source / "sample.json").write_text('{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}')
    (source / "function.yaml").write_text("name: talker\nhandler: handler:Talker\nsample: sample.json\n")
    with console_platform.client() as client:
        client.deploy(source)
    open_page(console, console_platform.url, "/functions/talker", "#logs")
    body = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [41.5]}]}
    response = httpx.post(console_platform.fn_url("talker", "v2/models/talker/infer"), json=body, timeout=60)
    assert response.status_code == 200, response.text
    wait(console, lambda d: "talker saw 41.5" in css(d, "#logs")[0].text, "the printed line in the following logs")
