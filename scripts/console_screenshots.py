"""Screenshots of the web console for docs/console/ (README and docs/console.md show them).

    .venv/bin/python scripts/console_screenshots.py [--out docs/console]

Starts its own `zeroserve up` (port chosen at start, data in a temporary directory), deploys examples/iris
twice (a changed model: two revisions; a low scaling target) and examples/echo-python, splits iris 90/10
with a `canary` tag, records a failed build, drives a burst of requests so the chart shows a scale-up, then
takes the pictures with Debian's chromium (headless, through chromium-driver): the functions list, a
function's page and the events at 1280 px, and a function's page at a phone's 390 px. Everything it started
is stopped before it exits.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from zeroserve.client import ApiError, ControlClient  # noqa: E402  (after the repository is on the path)

BODY = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}


def start_platform(data: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "zeroserve.cli", "up", "--port", "0", "--data", str(data)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("zeroserve ready at "):
            # Keep reading what it prints, or a full pipe would stall the platform.
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            return proc, line.split()[3]
    raise SystemExit("zeroserve up exited before it was ready")


def poll(condition: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def prepare(client: ControlClient, scratch: Path) -> None:
    import onnx

    source = scratch / "iris"
    shutil.copytree(REPO / "examples" / "iris", source, ignore=shutil.ignore_patterns("__pycache__"))
    # A low target, so that the burst below scales iris up in panic mode (shaded on the chart).
    manifest = yaml.safe_load((source / "function.yaml").read_text())
    manifest["scaling"] = {**manifest.get("scaling", {}), "target": 1, "max_scale": 4}
    (source / "function.yaml").write_text(yaml.safe_dump(manifest))
    client.deploy(source)
    model = onnx.load(source / "model.onnx")
    model.doc_string = "a retrained model"
    onnx.save(model, source / "model.onnx")
    client.deploy(source)
    client.set_traffic("iris", [{"revision": "iris-00001", "percent": 90},
                                {"revision": "iris-00002", "percent": 10, "tag": "canary"}])
    (source / "model.onnx").unlink()
    try:
        client.deploy(source)
    except ApiError:
        pass  # the failed build the console shows
    client.deploy(REPO / "examples" / "echo-python")  # a second function for the list


def load(url: str, clients: int, seconds: float) -> None:
    """Closed-loop requests from `clients` at once for `seconds`: enough to scale up (and panic) on a busy box."""
    async def run() -> None:
        deadline = time.monotonic() + seconds
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=clients)) as http:
            async def one() -> None:
                while time.monotonic() < deadline:
                    await http.post(url, json=BODY)
            await asyncio.gather(*(one() for _ in range(clients)))
    asyncio.run(run())


def browser(width: int, height: int) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--hide-scrollbars",
                     f"--window-size={width},{height}"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def shoot(url: str, token: str, out: Path, width: int, height: int, pages: list[tuple[str, str, str]]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser(width, height)
    try:
        driver.get(f"{url}/console/")
        WebDriverWait(driver, 20).until(lambda d: d.find_element(By.ID, "token").is_displayed())
        driver.find_element(By.ID, "token").send_keys(token)
        driver.find_element(By.CSS_SELECTOR, "#sign-in-form button[type=submit]").click()
        WebDriverWait(driver, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-function]"))
        for fragment, ready, name in pages:
            driver.get(f"{url}/console/#{fragment}")
            WebDriverWait(driver, 20).until(lambda d, r=ready: d.find_elements(By.CSS_SELECTOR, r))
            WebDriverWait(driver, 20).until(lambda d: "updated" in d.find_element(By.ID, "live").text)
            full = driver.execute_script("return document.documentElement.scrollHeight")
            driver.set_window_size(width, min(max(height, full + 40), 4000))
            driver.save_screenshot(str(out / name))
            driver.set_window_size(width, height)
            print(f"wrote {out / name}")
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "console", help="where the PNGs go")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="console-shots-") as scratch:
        proc, url = start_platform(Path(scratch) / "data")
        try:
            token = (Path(scratch) / "data" / "token").read_text().strip()
            with ControlClient(url, token, timeout=120) as client:
                prepare(client, Path(scratch))
                load(f"{url}/fn/iris/v2/models/iris/infer", clients=40, seconds=12)
                poll(lambda: sum(r["ready"] for r in client.status("iris")["revisions"]) >= 1, "a ready replica")
            shoot(url, token, args.out, 1280, 900, [
                ("/functions", "tr[data-function] .bar", "functions.png"),
                ("/functions/iris", "#chart svg[data-ready]", "function.png"),
                ("/events", "tr[data-event]", "events.png"),
            ])
            shoot(url, token, args.out, 390, 844, [("/functions/iris", "#chart svg[data-ready]", "function-phone.png")])
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
