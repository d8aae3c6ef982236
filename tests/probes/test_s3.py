"""The s3 probe against moto's real S3 server with auth enforced."""

from __future__ import annotations

import asyncio

from probes import ProbeLimits, S3Credentials, probe_url
from probes.report import to_json, to_table
from probes.s3 import parse
from tests.support.fixtures import S3_BUCKET
from tests.support.s3_server import S3Server

LIMITS = ProbeLimits(max_bytes=64 * 1024, timeout=10)


def test_signed_ranged_get(s3_server: S3Server) -> None:
    result = asyncio.run(probe_url(s3_server.location(S3_BUCKET, "big"), LIMITS))
    assert (result.outcome, result.kind, result.status) == ("ok", "s3", 206)
    assert result.bytes == 64 * 1024 and result.range_honoured is True
    assert result.backend == f"s3+http://127.0.0.4:{s3_server.port}"
    assert result.first_byte_seconds is not None


def test_object_smaller_than_the_range(s3_server: S3Server) -> None:
    result = asyncio.run(probe_url(s3_server.location(S3_BUCKET, "small"), LIMITS))
    assert (result.outcome, result.bytes) == ("ok", 1024)


def test_unknown_access_key_is_auth(s3_server: S3Server) -> None:
    url = s3_server.location(S3_BUCKET, "big", access="AKIAUNKNOWN000000000", secret="s3cr3t-x1")
    result = asyncio.run(probe_url(url, LIMITS))
    assert (result.outcome, result.error_class, result.status) == ("error", "auth", 403)
    assert "InvalidAccessKeyId" in result.message


def test_wrong_secret_is_auth(s3_server: S3Server) -> None:
    url = s3_server.location(S3_BUCKET, "big", secret="wrong-secret-5c2e")
    result = asyncio.run(probe_url(url, LIMITS))
    assert (result.outcome, result.error_class, result.status) == ("error", "auth", 403)
    assert "SignatureDoesNotMatch" in result.message


def test_missing_key_and_bucket_are_missing(s3_server: S3Server) -> None:
    for bucket, key in ((S3_BUCKET, "no-such-image"), ("no-such-bucket", "big")):
        result = asyncio.run(probe_url(s3_server.location(bucket, key), LIMITS))
        assert (result.outcome, result.error_class, result.status) == ("error", "missing", 404)


def test_configured_credentials_when_the_url_has_none(s3_server: S3Server) -> None:
    url = f"s3+http://{s3_server.host}:{s3_server.port}/{S3_BUCKET}/big"
    creds = S3Credentials(s3_server.access_key, s3_server.secret_key)
    result = asyncio.run(probe_url(url, LIMITS, credentials=creds))
    assert (result.outcome, result.status) == ("ok", 206)
    anonymous = asyncio.run(probe_url(url, LIMITS))
    assert (anonymous.outcome, anonymous.error_class) == ("error", "auth")
    assert "no S3 credentials" in anonymous.message


def test_results_never_carry_the_keys(s3_server: S3Server) -> None:
    for secret in ("uniq-secret-a1b2c3", s3_server.secret_key):
        url = s3_server.location(S3_BUCKET, "big", secret=secret)
        result = asyncio.run(probe_url(url, LIMITS))
        for text in (repr(result), to_json(result), to_table(result)):
            assert secret not in text
            assert s3_server.access_key not in text


def test_glance_url_shapes() -> None:
    loc = parse("s3://AK:se%2Fcret@s3.example.org:8080/prefix/bucket/image-id")
    assert loc.endpoint == "https://s3.example.org:8080/prefix"
    assert (loc.bucket, loc.key) == ("bucket", "image-id")
    assert loc.credentials is not None and loc.credentials.secret_key == "se/cret"
    assert "se/cret" not in repr(loc.credentials)
    assert parse("s3+http://h/b/k").endpoint == "http://h"
