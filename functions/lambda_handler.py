"""AWS Lambda entry point: the runtime's ASGI app behind a function URL (payload format 2.0).

The model loads at import, once per Lambda execution environment (the cold start), from the
function directory in `ZEROSERVE_FUNCTION_DIR` (default: the task root, where the deployment
package is unpacked). The Lambda handler setting is `functions.lambda_handler.handler`.
mangum would run the ASGI lifespan on every invocation, so it is off: nothing needs it here.
"""

from __future__ import annotations

import os

from mangum import Mangum

from functions.app import create_app

FUNCTION_DIR = os.environ.get("ZEROSERVE_FUNCTION_DIR") or os.environ.get("LAMBDA_TASK_ROOT") or "."

app = create_app(FUNCTION_DIR, revision=os.environ.get("ZEROSERVE_REVISION") or None)
handler = Mangum(app, lifespan="off")
