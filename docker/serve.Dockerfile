# syntax=docker/dockerfile:1
# GLOBE serving image: the KServe geo-reasoning predictor (`python -m globe.serve`, a kserve.Model)
# used by the ServingRuntime `globe` (manifests/base/serving-runtime.yaml). It runs the policy
# in-process (LocalEngine, CUDA torch from PyPI works on GPU nodes with the host driver) or calls an
# OpenAI-compatible engine such as the raw model on KServe's Hugging Face runtime (vLLM). vLLM itself
# is not installed here (it pins another torch): that runtime uses KServe's own image.
#   build:  docker build -f docker/serve.Dockerfile -t ghcr.io/globe-platform/globe-serve:0.1.0 .
#   check:  docker run --rm -p 8080:8080 -v $PWD/models/tiny:/mnt/models ghcr.io/globe-platform/globe-serve:0.1.0 \
#             python -m globe.serve --model /mnt/models --host 0.0.0.0
#           curl localhost:8080/v1/models/globe
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --gid 1000 globe \
 && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/globe --shell /usr/sbin/nologin globe

WORKDIR /opt/globe
COPY constraints.txt pyproject.toml README.md ./
COPY globe ./globe
# hadolint ignore=DL3013
RUN pip install --no-cache-dir -c constraints.txt '.[serve,train]' \
 && pip check

ENV HOME=/home/globe HF_HOME=/tmp/huggingface
USER 1000:1000
EXPOSE 8080
CMD ["python", "-m", "globe.serve", "--model", "/mnt/models", "--host", "0.0.0.0", "--http_port", "8080"]
