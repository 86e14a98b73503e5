"""Warm templates through a real `zeroserve up`: made at deploy, used by a cold start, shown and bounded."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.polling import wait_for
from tests.zeroserve.control.harness import run_cli
from tests.zeroserve.platform.conftest import FAST_SCALING, infer_body, sleepy_function


def metric(platform_url: str, token: str, name: str) -> float:
    text = httpx.get(f"{platform_url}/metrics", headers={"authorization": f"Bearer {token}"}, timeout=30).text
    return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith(f"{name} "))


def test_a_deployed_function_gets_a_warm_template_its_cold_start_forks_from(start_platform, tmp_path: Path):
    platform = start_platform()
    platform.deploy(sleepy_function(tmp_path, "warm", scaling=FAST_SCALING))
    template = wait_for(lambda: (t := platform.revision_status("warm")["warm_template"])["state"] == "ready" and t,
                        "the warm template", timeout=30)
    assert template["private_bytes"] > 0 and template["pid"] > 0
    response = httpx.post(platform.fn_url("warm", "v2/models/warm/infer"), json=infer_body(1), timeout=30)
    assert response.status_code == 200
    summary = platform.status("warm")["warm_templates"]
    assert summary["hits"] == 1 and summary["count"] == 1 and summary["budget_bytes"] == 512 << 20
    assert 0 < summary["bytes"] <= summary["budget_bytes"]
    assert metric(platform.url, platform.token, "zeroserve_warm_templates") == 1
    assert metric(platform.url, platform.token, "zeroserve_warm_template_hits_total") == 1
    assert metric(platform.url, platform.token, "zeroserve_warm_template_bytes") == summary["bytes"]
    shown = run_cli(platform, "status", "warm")
    assert shown.returncode == 0, shown.stderr
    assert "warm templates: 1 holding" in shown.stdout and "1 hits" in shown.stdout


def test_warm_templates_memory_0_turns_them_off(start_platform, tmp_path: Path):
    platform = start_platform(ZEROSERVE_WARM_TEMPLATES_MEMORY="0")
    platform.deploy(sleepy_function(tmp_path, "cold", scaling=FAST_SCALING))
    response = httpx.post(platform.fn_url("cold", "v2/models/cold/infer"), json=infer_body(1), timeout=30)
    assert response.status_code == 200
    status = platform.revision_status("cold")
    assert status["warm_template"] == {"state": "none", "pid": None, "private_bytes": 0,
                                       "reason": "warm templates are off (--warm-templates-memory 0)"}
    assert platform.status("cold")["warm_templates"]["count"] == 0


def test_a_bad_warm_templates_memory_is_refused_naming_the_setting():
    from zeroserve.settings import Settings, SettingsError

    try:
        Settings.load(warm_templates_memory="lots")
    except SettingsError as exc:
        assert "warm_templates_memory" in str(exc) and "512Mi" in str(exc)
    else:
        raise AssertionError("a bad --warm-templates-memory was accepted")
