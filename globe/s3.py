"""S3 for datasets, images and served weights: `s3://` URIs, one client setup, and failures that say what is wrong.

The endpoint comes from `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL` or, last, `MLFLOW_S3_ENDPOINT_URL`
(SeaweedFS, MinIO, the cluster's `globe-config` ConfigMap, which sets both), credentials from the
usual `AWS_*` variables; nothing is written down. A custom endpoint gets path-style addressing,
which every S3-compatible store serves.

botocore reports an unreachable endpoint, a missing bucket, a missing key and refused credentials
as a dozen exception types and error codes. `describe_failure` turns each into one sentence that
names the URI, the endpoint and what to fix, so a pipeline step fails with that sentence before
it starts any work, not with a traceback after an hour of it.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

SCHEME = "s3://"
# Error codes S3 stores return when the credentials (not the object) are the problem.
CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "AccessDenied", "403"}


class S3Error(ValueError):
    """An S3 location that cannot be read; the message names the URI and the cause."""


def is_s3(uri: str | Path | None) -> bool:
    return isinstance(uri, str) and uri.startswith(SCHEME)


def split_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/some/key` -> ("bucket", "some/key")."""
    if not is_s3(uri):
        raise S3Error(f"{uri!r} is not an s3:// URI")
    bucket, _, key = uri[len(SCHEME) :].partition("/")
    if not bucket:
        raise S3Error(f"{uri!r}: no bucket name")
    return bucket, key


def endpoint_url() -> str | None:
    env = os.environ
    return env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or env.get("MLFLOW_S3_ENDPOINT_URL") or None


_clients: dict[tuple, Any] = {}
_clients_lock = threading.Lock()


def client():
    """A boto3 S3 client for the configured endpoint: short connect timeout, two attempts.

    One client per configuration (the endpoint and every `AWS_*` variable), built on a fresh
    session: boto3's default session caches the first credentials it resolves, so a process whose
    AWS_* variables change (a test, a notebook) would keep using stale ones. A configuration seen
    before gets its client back (boto3 clients are thread-safe), because building one costs ~90 ms
    and the evaluation harness reads `s3://` images one at a time."""
    endpoint = endpoint_url()
    key = (endpoint, *sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))
    with _clients_lock:  # boto3 sessions are not thread-safe; build one at a time
        if key not in _clients:
            import boto3
            from botocore.config import Config

            config = Config(
                connect_timeout=5,
                read_timeout=60,
                retries={"max_attempts": 2, "mode": "standard"},
                s3={"addressing_style": "path"} if endpoint else {},
            )
            _clients[key] = boto3.session.Session().client("s3", endpoint_url=endpoint, config=config)
        return _clients[key]


def describe_failure(uri: str, exc: Exception) -> str:
    """One sentence for what went wrong reading `uri`."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    where = endpoint_url() or "the AWS default endpoint"
    bucket = split_uri(uri)[0]
    if isinstance(exc, NoCredentialsError):
        return f"{uri}: no S3 credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in CREDENTIAL_CODES:
            return (f"{uri}: S3 at {where} refused the credentials ({code}); check AWS_ACCESS_KEY_ID and "
                    f"AWS_SECRET_ACCESS_KEY and that they may read bucket {bucket!r}")
        if code == "NoSuchBucket":
            return f"{uri}: bucket {bucket!r} does not exist at {where}"
        if code in ("NoSuchKey", "404"):
            return f"{uri}: no such object at {where}"
        return f"{uri}: S3 at {where} answered {code or 'an error'}: {exc}"
    if isinstance(exc, EndpointConnectionError) or "Connect" in type(exc).__name__:
        return f"{uri}: cannot reach the S3 endpoint {where} ({exc}); check AWS_ENDPOINT_URL and the network"
    return f"{uri}: cannot read from S3 at {where}: {type(exc).__name__}: {exc}"


def _call(uri: str, fn, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # botocore raises many types; all mean "cannot read this URI"
        raise S3Error(describe_failure(uri, exc)) from exc


def check_bucket(uri: str, c=None) -> None:
    """The bucket exists and the credentials may list it (a GET, so errors carry their code)."""
    bucket, key = split_uri(uri)
    c = c or client()
    _call(uri, c.list_objects_v2, Bucket=bucket, Prefix=key, MaxKeys=1)


def check_object(uri: str) -> int:
    """The object exists and is readable; returns its size in bytes."""
    bucket, key = split_uri(uri)
    if not key or key.endswith("/"):
        raise S3Error(f"{uri}: expected an object key, got a bucket or a prefix")
    c = client()
    check_bucket(uri, c)
    return int(_call(uri, c.head_object, Bucket=bucket, Key=key)["ContentLength"])


def list_keys(uri: str, c=None) -> list[str]:
    """Every object key under the prefix `uri` (sorted); folder markers are left out."""
    bucket, prefix = split_uri(uri)
    prefix = prefix.rstrip("/") + "/" if prefix else ""
    c = c or client()

    def pages():
        for page in c.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            yield from (obj["Key"] for obj in page.get("Contents", []) if not obj["Key"].endswith("/"))

    return sorted(_call(uri, lambda: list(pages())))


def download(uri: str, dest: str | Path, c=None) -> Path:
    """Download one object to `dest` (parents created; written by boto3 to a temporary name first).
    Pass one `client()` as `c` when downloading many."""
    bucket, key = split_uri(uri)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    _call(uri, (c or client()).download_file, bucket, key, str(dest))
    return dest

