"""The `s3_server` fixture is a real S3 API: objects round-trip and SigV4 auth is enforced."""

from __future__ import annotations

import hashlib

import pytest


@pytest.mark.slow
def test_s3_roundtrip_and_auth(s3_server):
    bucket = s3_server.make_bucket("fixture-check")
    payload = bytes(range(256)) * 4096  # 1 MiB
    c = s3_server.client()
    c.put_object(Bucket=bucket, Key="a/b.bin", Body=payload)
    body = c.get_object(Bucket=bucket, Key="a/b.bin")["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(payload).digest()
    assert [o["Key"] for o in c.list_objects_v2(Bucket=bucket)["Contents"]] == ["a/b.bin"]
    assert s3_server.env()["AWS_ENDPOINT_URL"] == s3_server.endpoint_url

    intruder = s3_server.client(aws_secret_access_key="wrong-" + s3_server.secret_key)
    with pytest.raises(Exception) as err:
        intruder.get_object(Bucket=bucket, Key="a/b.bin")
    assert "SignatureDoesNotMatch" in str(err.value) or "AccessDenied" in str(err.value)
