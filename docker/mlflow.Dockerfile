# syntax=docker/dockerfile:1
# MLflow tracking server image for manifests/base/mlflow.yaml: mlflow (same version as the
# clients, from constraints.txt) plus the Postgres driver and boto3 for S3 artifacts. The
# upstream image lacks psycopg2, so Postgres-backed servers need their own.
#   build:  docker build -f docker/mlflow.Dockerfile -t ghcr.io/globe-platform/globe-mlflow:0.1.0 .
#   check:  docker run --rm ghcr.io/globe-platform/globe-mlflow:0.1.0 python -c "import mlflow, psycopg2, boto3"
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --gid 1000 mlflow \
 && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/mlflow --shell /usr/sbin/nologin mlflow

COPY constraints.txt /tmp/constraints.txt
RUN pip install --no-cache-dir -c /tmp/constraints.txt mlflow==3.17.2 boto3==1.43.117 psycopg2-binary==2.9.13 \
 && pip check

ENV HOME=/home/mlflow
USER 1000:1000
EXPOSE 5000
CMD ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000"]
