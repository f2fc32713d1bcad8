# syntax=docker/dockerfile:1
# MLflow tracking server image for manifests/base/mlflow.yaml: mlflow (same version as the
# clients, from constraints.txt) plus the Postgres driver and boto3 for S3 artifacts. The
# upstream image lacks psycopg2, so Postgres-backed servers need their own.
#   build:  scripts/images.sh build mlflow   (or: docker build -f docker/mlflow.Dockerfile -t ghcr.io/globe-platform/globe-mlflow:0.1.0 .)
#   check:  scripts/images.sh smoke mlflow   (a server on loopback answers /health, as UID 1000)
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
 && groupadd --gid 1000 mlflow \
 && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/mlflow --shell /usr/sbin/nologin mlflow

COPY constraints.txt /tmp/constraints.txt
RUN pip install --no-cache-dir -c /tmp/constraints.txt mlflow==3.17.2 boto3==1.43.117 psycopg2-binary==2.9.13 \
 && pip check

# A writable working directory: without --backend-store-uri, mlflow keeps its database in ./ .
WORKDIR /home/mlflow
ENV HOME=/home/mlflow
USER 1000:1000
EXPOSE 5000
CMD ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000"]

# Last, so that a new commit changes only this metadata layer, not the cached install above.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=https://github.com/globe-platform/globe
LABEL org.opencontainers.image.title="globe-mlflow" \
      org.opencontainers.image.description="MLflow tracking server with Postgres and S3 support" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.version="${VERSION}"
