# syntax=docker/dockerfile:1
# GLOBE serving image: the KServe geo-reasoning predictor (`python -m globe.serve`, a kserve.Model)
# used by the ServingRuntime `globe` (manifests/base/serving-runtime.yaml). It runs the policy
# in-process (LocalEngine) or calls an OpenAI-compatible engine such as the raw model on KServe's
# Hugging Face runtime (vLLM). vLLM itself is not installed here (it pins another torch): that
# runtime uses KServe's own image.
#   build:  scripts/images.sh build serve    (or: docker build -f docker/serve.Dockerfile -t ghcr.io/globe-platform/globe-serve:0.1.0 .)
#   check:  scripts/images.sh smoke serve    (the predictor on loopback with the tiny model answers a V1 request)
#   by hand: docker run --rm -p 8080:8080 -v $PWD/models/tiny:/mnt/models ghcr.io/globe-platform/globe-serve:0.1.0
#            curl localhost:8080/v1/models/globe
# Only the `model` and `serve` extras: torch, transformers, peft, kserve, mlflow (for models:/ URIs);
# no trl, deepspeed or datasets. torch is PyPI's CUDA build by default, because the prod overlay
# runs the 7B policy on a GPU (it brings its CUDA runtime; the node supplies the driver). For a
# CPU-only predictor set TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu: about 4.5 GB smaller
# (CUDA torch, triton and the nvidia-* libraries are 5.3 GB of the 7.2 GB image; CPU torch 0.75 GB).
ARG BASE_IMAGE=python:3.11.14-slim-bookworm
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LANG=C.UTF-8 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN python3 -m venv /opt/venv \
 && groupadd --gid 1000 globe \
 && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/globe --shell /usr/sbin/nologin globe

# torch first, in its own layer: the biggest install, and it changes only with constraints.txt.
ARG TORCH_INDEX_URL=
WORKDIR /opt/globe
COPY constraints.txt ./
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} -c constraints.txt torch torchvision
COPY pyproject.toml README.md ./
COPY globe ./globe
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} \
      -c constraints.txt '.[model,serve]' \
 && pip check

WORKDIR /home/globe
ENV HOME=/home/globe HF_HOME=/tmp/huggingface
USER 1000:1000
EXPOSE 8080
CMD ["python", "-m", "globe.serve", "--model", "/mnt/models", "--host", "0.0.0.0", "--http_port", "8080"]

# Last, so that a new commit changes only this metadata layer, not the cached install above.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=https://github.com/globe-platform/globe
LABEL org.opencontainers.image.title="globe-serve" \
      org.opencontainers.image.description="GLOBE KServe geo-reasoning predictor" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.version="${VERSION}"
