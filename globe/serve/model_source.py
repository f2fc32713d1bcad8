"""Where the served weights come from: a local directory, an `s3://` prefix, or `models:/NAME@ALIAS`.

All three end as a local Hugging Face checkpoint directory that `LocalEngine` loads:
- a local directory is used in place;
- `s3://bucket/prefix` is downloaded with boto3 (`globe.s3.client`: endpoint from `AWS_ENDPOINT_URL`,
  as KServe's storage initializer does, or `MLFLOW_S3_ENDPOINT_URL`) into a cache directory keyed by the URI and
  the objects' ETags, so a restart reuses it and a changed prefix is fetched again. The download goes
  to a temporary directory that is renamed into place only when complete (`globe.io.atomic_directory`):
  a crash never leaves a half-downloaded model that a later start would trust;
- `models:/NAME@ALIAS` (or `models:/NAME/VERSION`) is resolved through the MLflow registry to the
  version's storage location (see `globe.mlflow_registry.storage_uri`), then fetched like any other URI.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from globe.io import atomic_directory


class ModelSourceError(ValueError):
    """The model URI cannot be resolved to a usable checkpoint; the message says why."""


def default_cache_dir() -> Path:
    return Path(os.environ.get("GLOBE_MODEL_CACHE", Path.home() / ".cache" / "globe" / "models"))


def resolve_model(uri: str, cache_dir: str | Path | None = None) -> Path:
    """Return a local checkpoint directory for `uri`, downloading it when it is remote."""
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    if uri.startswith("models:/"):
        return resolve_model(_registry_location(uri), cache)
    if uri.startswith("file://"):  # a local MLflow store's artifact location
        from urllib.parse import unquote, urlparse

        return resolve_model(unquote(urlparse(uri).path), cache)
    if uri.startswith("s3://"):
        return _checked(download_s3(uri, cache), uri)
    if "://" in uri or uri.startswith(("runs:/", "mlflow-artifacts:/")):
        return _checked(_download_mlflow(uri, cache), uri)
    path = Path(uri).expanduser()
    if not path.is_dir():
        raise ModelSourceError(f"model {uri!r}: no such directory (expected a checkpoint dir, s3:// URI or models:/NAME@ALIAS)")
    return _checked(path, uri)


def _registry_location(uri: str) -> str:
    """The storage location of a `models:/` URI, or ModelSourceError in one line (never a traceback)."""
    from globe.redact import short
    from globe.mlflow_registry import RegistryError, storage_uri

    try:
        return storage_uri(uri)
    except RegistryError as exc:
        raise ModelSourceError(f"model {uri!r}: {short(str(exc))}") from exc
    except Exception as exc:  # mlflow/requests: registry unreachable, model or alias unknown, auth refused
        import mlflow

        raise ModelSourceError(
            f"model {uri!r}: cannot resolve it through the MLflow registry at {short(mlflow.get_tracking_uri(), 120)}: "
            f"{short(getattr(exc, 'message', None) or str(exc))}"
        ) from exc


def download_s3(uri: str, cache: Path) -> Path:
    """Download every object under an `s3://bucket/prefix` into the cache; return the local dir."""
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ModelSourceError(f"model {uri!r}: missing bucket name")
    prefix = prefix.rstrip("/") + "/" if prefix else ""
    from globe import s3
    from globe.paths import OutsideFolder, check_s3_key

    client = s3.client()
    try:
        objects = [
            obj
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for obj in page.get("Contents", [])
            if not obj["Key"].endswith("/")
        ]
    except Exception as exc:  # botocore raises many types; all mean "cannot read this URI"
        raise ModelSourceError(f"model {uri!r}: cannot list objects: {exc}") from exc
    if not objects:
        raise ModelSourceError(f"model {uri!r}: no objects under this prefix")
    digest = hashlib.sha256(uri.encode())
    for obj in sorted(objects, key=lambda o: o["Key"]):
        digest.update(f"{obj['Key']}\0{obj.get('ETag', '')}\0{obj.get('Size', '')}".encode())
    target = cache / digest.hexdigest()[:24]
    if target.is_dir():
        return target
    try:
        with atomic_directory(target, replace=False) as tmp:  # another process may finish it first: fine
            for obj in objects:
                try:  # the listing is the server's word: every key must lie under the prefix, unambiguously
                    check_s3_key(obj["Key"], uri, prefix)
                except OutsideFolder as exc:
                    raise ModelSourceError(f"model {uri!r}: refusing object key {obj['Key']!r} ({exc})") from None
                rel = obj["Key"][len(prefix) :]
                dest = (tmp / rel).resolve()
                if tmp.resolve() not in dest.parents:  # a key like "../x" must not escape the cache
                    raise ModelSourceError(f"model {uri!r}: refusing object key {obj['Key']!r}")
                dest.parent.mkdir(parents=True, exist_ok=True)
                client.download_file(bucket, obj["Key"], str(dest))
    except OSError as exc:
        if target.is_dir():
            return target
        raise ModelSourceError(f"model {uri!r}: download failed: {exc}") from exc
    return target


def _download_mlflow(uri: str, cache: Path) -> Path:
    import mlflow

    target = cache / hashlib.sha256(uri.encode()).hexdigest()[:24]
    if target.is_dir():
        return target
    try:
        with atomic_directory(target, replace=False) as tmp:
            (tmp / ".download").mkdir()
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp / ".download")))
            for child in local.iterdir():  # `runs:/ID/PATH` lands in a subfolder: its files are the model
                os.replace(child, tmp / child.name)
            shutil.rmtree(tmp / ".download")
    except Exception as exc:
        raise ModelSourceError(f"model {uri!r}: download failed: {exc}") from exc
    return target


def _checked(path: Path, uri: str) -> Path:
    if not (path / "config.json").is_file():
        raise ModelSourceError(f"model {uri!r}: {path} has no config.json; expected a Hugging Face checkpoint directory")
    return path
