# syntax=docker/dockerfile:1.7
# creditops: the decision service, dashboard, monitor and retrain jobs in one image.
#   docker build -t creditops .
#   docker run -p 8000:8000 -e CREDITOPS_API_KEY=... creditops               # serve
#   docker run creditops monitor --every 1h                                   # any command
# /var/lib/mlflow is where the image, run as `mlflow server` (compose.yaml), keeps artifacts.
# PORT, CREDITOPS_HOST and WEB_CONCURRENCY are honoured by `creditops serve`.

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# ---- build: every wheel the runtime needs, at the versions and hashes of the lock --------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m pip install --no-cache-dir "pip==25.3" "build==1.3.0"
# requirements/runtime.lock (`make lock`) pins every dependency with its hashes, torch as its
# CPU-only build from the index the file names (the default build bundles CUDA: gigabytes the
# service never uses). --no-deps: the lock is the whole set; it leaves out nvidia-nccl-cu12,
# which xgboost's wheel asks for and only multi-GPU training loads. Copied before the source,
# so this layer is rebuilt only when the lock changes.
COPY requirements/runtime.lock requirements/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels -r requirements/runtime.lock
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# ---- runtime: the wheels installed, no compiler, a non-root user ------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CREDITOPS_HOME=/var/lib/creditops \
    CREDITOPS_HOST=0.0.0.0 \
    PORT=8000 \
    WEB_CONCURRENCY=2
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --no-deps /wheels/*.whl \
 && groupadd --system --gid 10001 creditops \
 && useradd --system --uid 10001 --gid creditops --home-dir /var/lib/creditops \
        --create-home --shell /usr/sbin/nologin creditops \
 && install -d -o creditops -g creditops /var/lib/mlflow
USER 10001:10001
WORKDIR /var/lib/creditops
VOLUME ["/var/lib/creditops"]
EXPOSE 8000
# Liveness only (the process answers); readiness (/ready) is the orchestrator's to ask.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/health', timeout=4)"]
# Exec form: SIGTERM reaches the server itself, which drains and exits.
ENTRYPOINT ["creditops"]
CMD ["serve"]
