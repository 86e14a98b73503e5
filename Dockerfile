# syntax=docker/dockerfile:1
# The zeroserve runtime image: one image serves any revision (docs/knative.md).
#
# A pod gets ZEROSERVE_ARTIFACT=s3://bucket/prefix@sha256:<digest> (and the store's credentials from a
# Secret); the entrypoint fetches that artifact, verifies every file's sha256, and serves KServe V1 + Open
# Inference Protocol V2 on $PORT (Knative sets 8080). Readiness: GET /v2/health/ready.
#
#   docker build -t REGISTRY/zeroserve-runtime:0.1 .                                   # onnxruntime (CPU)
#   docker build --build-arg ONNXRUNTIME=onnxruntime-gpu -t REGISTRY/zeroserve-runtime:0.1-gpu .
#   docker build --build-arg TORCH=torch==2.13.0 -t REGISTRY/zeroserve-runtime:0.1-torch .  # + TorchScript
#   docker push REGISTRY/zeroserve-runtime:0.1

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------------------------- build
FROM ${PYTHON_IMAGE} AS build
# onnxruntime (CPU) or onnxruntime-gpu (CUDA 12 + cuDNN 9 on the node; see docs/knative.md).
ARG ONNXRUNTIME=onnxruntime
# Empty: no torch. A requirement such as torch==2.13.0 adds TorchScript models, from TORCH_INDEX_URL.
ARG TORCH=
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# What `zeroserve serve --artifact` imports, and no more: the platform's own dependencies (FastAPI, locust,
# matplotlib, the kubernetes client) stay out of the image. tests/knative/test_runtime_image.py checks
# that this list covers every module the runtime loads.
ARG RUNTIME_REQUIREMENTS="uvicorn[standard]>=0.29 httptools>=0.6 pydantic>=2.6 numpy>=1.26 pyyaml>=6 typer>=0.12 rich>=13 boto3>=1.34"
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/zeroserve
ENV PATH=/opt/zeroserve/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY protocol/ protocol/
COPY autoscaler/ autoscaler/
COPY functions/ functions/
COPY revisions/ revisions/
COPY activator/ activator/
COPY deploy/ deploy/
COPY zeroserve/ zeroserve/
COPY loadtests/ loadtests/
RUN pip install $RUNTIME_REQUIREMENTS "$ONNXRUNTIME" \
 && pip install --no-deps . \
 && if [ -n "$TORCH" ]; then pip install --index-url "$TORCH_INDEX_URL" "$TORCH"; fi

# ------------------------------------------------------------------------------------ lambda (AWS Lambda)
# The same runtime as an AWS Lambda container image (PackageType Image; docs/lambda.md):
#   docker build --target lambda -t ACCOUNT.dkr.ecr.REGION.amazonaws.com/zeroserve:0.1 .
# Lambda's runtime interface client is the entrypoint, the handler the command; importing the handler is
# the init: it fetches ZEROSERVE_ARTIFACT by digest, verifies every file and loads the model once
# (deploy/aws_lambda). This stage sits before `runtime` so that a plain `docker build .` (the last stage)
# still builds the Knative image. Lambda runs the container as its own non-root user, with a read-only
# file system except /tmp.
FROM build AS lambda-build
ARG LAMBDA_REQUIREMENTS="mangum>=0.17 awslambdaric>=3"
RUN pip install $LAMBDA_REQUIREMENTS

FROM ${PYTHON_IMAGE} AS lambda
COPY --from=lambda-build /opt/zeroserve /opt/zeroserve
ENV PATH=/opt/zeroserve/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /opt/zeroserve
ENTRYPOINT ["/opt/zeroserve/bin/python", "-m", "awslambdaric"]
CMD ["deploy.aws_lambda.handler.handler"]

# -------------------------------------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 zeroserve \
 && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/zeroserve \
      --shell /usr/sbin/nologin zeroserve
COPY --from=build /opt/zeroserve /opt/zeroserve
# ZEROSERVE_HOST: a pod is reached on its own IP, not on loopback.
ENV PATH=/opt/zeroserve/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ZEROSERVE_HOST=0.0.0.0 \
    PORT=8080
USER 10001:10001
WORKDIR /home/zeroserve
EXPOSE 8080
# exec: the server is PID 1 and gets Knative's SIGTERM itself.
ENTRYPOINT ["/bin/sh", "-c", "exec zeroserve serve --artifact \"$ZEROSERVE_ARTIFACT\"", "zeroserve"]
