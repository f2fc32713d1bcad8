# syntax=docker/dockerfile:1
# GLOBE CPU image: the `globe` CLI with every stage's dependencies (CPU torch). It is the
# `base_image` of every KFP component (globe/kfp/components/*), so nothing is installed at run time, and it
# runs `dvc repro` / the tiny world in a pod.
#   build:  scripts/images.sh build cpu      (or: docker build -f docker/cpu.Dockerfile -t ghcr.io/globe-platform/globe-cpu:0.1.0 .)
#   check:  scripts/images.sh smoke cpu      (`globe --help` and `globe data synth` into /workspace, as UID 1000)
# Versions: every Python package is pinned by constraints.txt (the dev/CI lock). torch comes from
# TORCH_INDEX_URL, the CPU wheel index by default (2.14.1+cpu satisfies the torch==2.14.1 pin);
# an empty TORCH_INDEX_URL takes PyPI's CUDA build instead (what CI does: that index is unreachable
# there). BASE_IMAGE is any Debian-like image with `python3` 3.11 and its venv module: the official
# slim image, or the mmdebstrap bookworm base that scripts/images.sh builds without a registry.
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
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
WORKDIR /opt/globe
COPY constraints.txt ./
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} -c constraints.txt torch torchvision
COPY pyproject.toml README.md ./
COPY globe ./globe
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} \
      -c constraints.txt '.[train,serve,pipeline]' \
 && pip check

WORKDIR /workspace
RUN chown 1000:1000 /workspace
ENV HOME=/home/globe HF_HOME=/workspace/.cache/huggingface
USER 1000:1000
CMD ["globe", "--help"]

# Last, so that a new commit changes only this metadata layer, not the cached install above.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=https://github.com/globe-platform/globe
LABEL org.opencontainers.image.title="globe-cpu" \
      org.opencontainers.image.description="GLOBE CLI and every pipeline stage on CPU torch" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.version="${VERSION}"
