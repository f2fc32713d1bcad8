# syntax=docker/dockerfile:1
# GLOBE CPU base image: the `globe` CLI with every stage's dependencies (CPU torch). It is the
# `base_image` of every KFP component (components/*), so nothing is installed at run time, and it
# runs `dvc repro` / the tiny world in a pod.
#   build:  docker build -f docker/cpu.Dockerfile -t ghcr.io/globe-platform/globe-cpu:0.1.0 .
#   check:  docker run --rm ghcr.io/globe-platform/globe-cpu:0.1.0 globe --help
# Versions: every Python package is pinned by constraints.txt (the dev/CI lock); torch comes from
# the CPU wheel index (2.14.1+cpu satisfies the torch==2.14.1 pin).
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
RUN pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu \
      -c constraints.txt '.[train,serve,pipeline]' \
 && pip check

WORKDIR /workspace
RUN chown 1000:1000 /workspace
ENV HOME=/home/globe HF_HOME=/workspace/.cache/huggingface
USER 1000:1000
CMD ["globe", "--help"]
