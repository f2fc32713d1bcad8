# syntax=docker/dockerfile:1
# GLOBE GPU training image: TRL + DeepSpeed on CUDA, launched by Kubeflow Trainer with torchrun
# (manifests/base/training-runtime.yaml) and used by the pipeline's GPU steps.
#   build:  scripts/images.sh build train    (or: docker build -f docker/train.Dockerfile -t ghcr.io/globe-platform/globe-train:0.1.0 .)
#           docker build -f docker/train.Dockerfile --target train-vllm -t ghcr.io/globe-platform/globe-train:0.1.0-vllm .
#   check:  scripts/images.sh smoke train    (imports torch, trl, deepspeed; the 8-GPU GRPO preset's --dry-run)
#           docker run --rm --gpus all ghcr.io/globe-platform/globe-train:0.1.0 \
#             python -c "import torch, deepspeed; print(torch.cuda.is_available(), torch.version.cuda)"
# The CUDA *devel* base supplies nvcc for DeepSpeed's JIT-built ops; keep its CUDA major/minor
# equal to torch's (`torch.version.cuda`: 13.0 for the pinned torch 2.14.1) when bumping torch.
# Python packages are pinned by constraints.txt; the PyPI torch wheel brings its own CUDA runtime
# libraries. BASE_IMAGE may also be a plain Debian/Ubuntu image with apt (CI builds on its
# bookworm base, which has no nvcc: enough to import and dry-run, not for JIT ops on a GPU).
ARG BASE_IMAGE=nvidia/cuda:13.0.1-cudnn-devel-ubuntu22.04
FROM ${BASE_IMAGE} AS train-base

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LANG=C.UTF-8 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# The distro snapshot is fixed by the base image tag. python3.11-dev: headers for DeepSpeed's JIT ops.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3.11-dev \
 && rm -rf /var/lib/apt/lists/* \
 && python3.11 -m venv /opt/venv \
 && groupadd --gid 1000 globe \
 && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/globe --shell /usr/sbin/nologin globe

# torch first, in its own layer: the biggest install, and it changes only with constraints.txt.
WORKDIR /opt/globe
COPY constraints.txt ./
# hadolint ignore=DL3013
RUN pip install --no-cache-dir -c constraints.txt torch torchvision
COPY pyproject.toml README.md ./
COPY globe ./globe
# hadolint ignore=DL3013
RUN pip install --no-cache-dir -c constraints.txt '.[train,pipeline]' \
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
LABEL org.opencontainers.image.title="globe-train" \
      org.opencontainers.image.description="GLOBE training: TRL and DeepSpeed on CUDA torch" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.version="${VERSION}"

# GRPO with vLLM rollouts (grpo.use_vllm: true). vLLM pins its own torch, so this target is
# resolved against TRL's `vllm` extra instead of constraints.txt (which would conflict); the
# versions are pinned here. Built only when asked for (--target train-vllm), run on GPU clusters
# only; CI never installs vLLM.
FROM train-base AS train-vllm
ARG TRL_VERSION=1.16.0
ARG VLLM_VERSION=0.24.0
USER 0:0
# hadolint ignore=DL3013
RUN pip install --no-cache-dir "trl[vllm]==${TRL_VERSION}" "vllm==${VLLM_VERSION}" \
 && pip check
USER 1000:1000

# The default target (the last stage): the pinned stack without vLLM. Without this stage a plain
# `docker build` would build train-vllm, whose vLLM replaces the pinned torch.
FROM train-base AS train
USER 1000:1000
