"""Names the KFP pipeline shares with manifests/ and docker/: images, Secrets, ConfigMap, PVC, GPU
placement defaults and step timeouts. One place, so a rename cannot leave the pipeline pointing
at objects the manifests no longer create (tests compare them)."""

from __future__ import annotations

from globe import __version__

REGISTRY = "ghcr.io/globe-platform"
CPU_IMAGE = f"{REGISTRY}/globe-cpu:{__version__}"  # docker/cpu.Dockerfile: every CPU step
TRAIN_IMAGE = f"{REGISTRY}/globe-train:{__version__}"  # docker/train.Dockerfile: GPU steps and TrainJobs

CONFIG_MAP = "globe-config"  # manifests/base/config.yaml: S3 endpoint, MLflow URI (not secret)
S3_SECRET = "globe-s3"  # manifests/templates/secrets.yaml
S3_SECRET_ENV = {"AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY"}
WORKSPACE_PVC = "globe-workspace"  # manifests/base/workspace-pvc.yaml
WORKSPACE_PATH = "/workspace"
TRAINING_RUNTIME = "globe-grpo"  # manifests/base/training-runtime.yaml

GPU_RESOURCE = "nvidia.com/gpu"
GPU_NODE_SELECTOR = {"nvidia.com/gpu.present": "true"}
GPU_TOLERATIONS = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
SHM_SIZE = "64Gi"

CPU_STEP_TIMEOUT_S = 6 * 3600
GPU_STEP_TIMEOUT_S = 48 * 3600
TRAINJOB_TIMEOUT_S = 72 * 3600

DVC_REMOTE = "s3://globe/dvc"  # .dvc/config's `storage` remote: where the pipeline versions datasets

# params.yaml groups the pipeline takes as parameters, one dict each, in this order.
PIPELINE_GROUPS = ("base", "source", "synth", "heldout", "distill", "verify", "rewards", "sft", "reward_model", "grpo",
                   "eval", "benchmark", "register", "serve")  # serve: saved into the registered model (globe.serve.settings)
TRAINJOB_GROUPS = ("base", "grpo", "rewards")  # the params.yaml the GRPO TrainJob's pods read
