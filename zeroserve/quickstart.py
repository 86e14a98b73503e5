"""What `make run` starts: the local platform with examples/iris deployed, and how to call it.

The platform is the same one `zeroserve up` runs; the example is deployed through the same deploy
service the API and `git push` use, so what a new user sees is what they will get.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from zeroserve.settings import Settings
from zeroserve.up import Platform, run_platform

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "iris"


def run_quickstart(port: int | None = None, data_dir: str | None = None) -> None:
    """port/data_dir None: ZEROSERVE_PORT / ZEROSERVE_DATA, else 8080 and ./.zeroserve (as `zeroserve up`)."""
    settings = Settings.load(port=port, data_dir=data_dir)

    async def deploy_example(platform: Platform) -> None:
        result = await platform.deployer.deploy_dir(EXAMPLE, lambda line: print(f"  {line}", flush=True))
        if not result.ok:
            print(f"deploying {EXAMPLE} failed: {result.message}", file=sys.stderr, flush=True)
            return
        print(_instructions(platform, result.revision or "", result.status), flush=True)

    run_platform(settings, after_ready=deploy_example)


def _instructions(platform: Platform, revision: str, status: str) -> str:
    urls = platform.control.function_urls("iris")
    sample = shlex.quote(str(EXAMPLE / "sample.json"))
    infer = f"{urls['url']}v2/models/iris/infer"
    token_path = platform.settings.token_path
    return "\n".join([
        "",
        f"iris is deployed ({status}: {revision}). It scales to zero when idle (stable window + grace"
        " period) and the activator wakes it on the next request.",
        f"  function URL: {urls['url']}   (also {urls['path_url']})",
        "  try it:",
        f"    curl -s -d @{sample} {infer}",
        f"    curl -s -d '{{\"instances\": [[5.1, 3.5, 1.4, 0.2]]}}' {urls['url']}v1/models/iris:predict",
        "  watch it scale:",
        f"    ZEROSERVE_URL={platform.base_url} ZEROSERVE_DATA={platform.settings.data_dir} "
        ".venv/bin/zeroserve status iris",
        f"  API token: {token_path} (Authorization: Bearer ...); API docs: {platform.base_url}/api/v1/docs",
        "  Ctrl-C stops the platform and every replica.",
        "",
    ])
