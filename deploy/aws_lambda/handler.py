"""The Lambda entry point of the runtime image: `deploy.aws_lambda.handler.handler`.

The image's entrypoint is the AWS Lambda runtime interface client (awslambdaric), its command this
handler (Dockerfile, stage `lambda`). Lambda imports this module once per execution environment, and
the import is the init: the revision named by ZEROSERVE_ARTIFACT is fetched by digest, verified and
loaded here (deploy.aws_lambda.runtime), never in the request path. A failure raises LambdaInitError,
which Lambda reports as the function's init error with the message naming what is wrong.

For a function directory baked into an image instead of an artifact, functions/lambda_handler.py is
the handler (ZEROSERVE_FUNCTION_DIR).
"""

from __future__ import annotations

from deploy.aws_lambda.runtime import prepare

runtime = prepare()
handler = runtime.handler
app = runtime.app

__all__ = ["app", "handler", "runtime"]
