"""AWS Lambda entry point for a function directory baked into the image or package.

The model loads at import, once per Lambda execution environment (the cold start), from the
function directory in `ZEROSERVE_FUNCTION_DIR` (default: the task root, where the deployment
package is unpacked). The Lambda handler setting is `functions.lambda_handler.handler`.
mangum would run the ASGI lifespan on every invocation (mangum #342), so it is off: nothing needs it here.

The platform's Lambda target does not use this one: its image runs `deploy.aws_lambda.handler.handler`,
which fetches a revision's artifact by digest (ZEROSERVE_ARTIFACT) and verifies it before loading. That
handler lives in deploy/ because functions/ may import only protocol/.
"""

from __future__ import annotations

import os

from mangum import Mangum

from functions.app import create_app

FUNCTION_DIR = os.environ.get("ZEROSERVE_FUNCTION_DIR") or os.environ.get("LAMBDA_TASK_ROOT") or "."

app = create_app(FUNCTION_DIR, revision=os.environ.get("ZEROSERVE_REVISION") or None)
handler = Mangum(app, lifespan="off")
