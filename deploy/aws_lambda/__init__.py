"""The AWS Lambda target: each revision one published version, the route the weighted alias `live`.

Why `aws_lambda` and not `lambda`: `lambda` is a Python keyword, so a package of that name could
never be imported (`import deploy.lambda` is a SyntaxError). The architecture's "deploy/lambda" is
this package.

- `mapping`: the function's configuration, one pure function (function.yaml, revision, artifact URI,
  settings) -> the parameters of create_function / update_function_* / publish_version, plus notes
  about keys Lambda has no counterpart for.
- `routing`: the route, one pure function (route, published versions, function.yaml, settings) ->
  the aliases (`live` and one per tag), their function URLs, URL permissions and concurrency.
  Lambda's rules (at most two versions per alias, 900 s, 128-10,240 MB, ...) are checked here,
  before any call, so a refused change changes nothing.
- `account`: applying those with boto3 (imported only by whoever talks to AWS: boto3 costs ~0.2 s).
- `target`: deploy/targets.py's `Target` over the three: what the deploy service and the registry's
  route observer call (check, publish, follow the route, settle, delete, describe, status).
- `runtime` and `handler`: the Lambda entry point of the runtime image (Dockerfile, stage `lambda`):
  at init it fetches the revision's artifact by digest, verifies it and loads the model once.

Nothing here imports boto3 or the runtime at package import, so the handler's cold start pays only
for what it uses. See docs/lambda.md.
"""
