"""S3 (moto), Swift (a real proxy), files, Glance: the transports end to end."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from sidecar.fetch import FetchFailed, fetch_glance_image, fetch_image_sync
from sidecar.fetch.api import DEFAULT_LIMITS
from tests.fetch.support import MIB, dead_sidecar, fetch_cli, sha256
from tests.support.fixtures import S3_BUCKET, pattern
from tests.support.http_server import RangeServer
from tests.support.keystone_stub import KeystoneStub
from tests.support.s3_server import S3Server
from tests.support.swift_cluster import SwiftCluster

Servers = Callable[..., RangeServer]
BIG = pattern(1 << 20)  # what the s3 and swift fixtures hold as "big"


def test_s3_signed_ranged_reads(s3_server: S3Server, tmp_path: Path) -> None:
    url = s3_server.location(S3_BUCKET, "big")
    result = fetch_image_sync(
        [url], tmp_path / "img", checksum=sha256(BIG), sidecar_url=dead_sidecar()
    )
    assert (tmp_path / "img").read_bytes() == BIG
    assert result.bytes_by_source == {
        f"s3+http://{s3_server.host}:{s3_server.port}/images/big": 1 << 20
    }


def test_s3_wrong_key_is_an_auth_failure_without_the_secret(
    s3_server: S3Server, tmp_path: Path
) -> None:
    secret = "WrongSecretKey1234567890"
    url = s3_server.location(S3_BUCKET, "big", access="AKIAWRONGWRONG", secret=secret)
    done, summary = fetch_cli(url, "-o", str(tmp_path / "img"), "--sidecar", dead_sidecar())
    assert done.returncode == 1
    assert "HTTP 403" in summary["error"] or "HTTP 401" in summary["error"]
    assert secret not in done.stdout + done.stderr and "AKIAWRONG" not in done.stderr
    assert not (tmp_path / "img").exists()


def test_swift_v1_auth_then_ranged_reads(swift_cluster: SwiftCluster, tmp_path: Path) -> None:
    url = swift_cluster.location("glance", "big")
    result = fetch_image_sync(
        [url], tmp_path / "img", size=1 << 20, checksum=sha256(BIG), sidecar_url=dead_sidecar()
    )
    assert (tmp_path / "img").read_bytes() == BIG
    assert result.size == 1 << 20


def test_swift_keystone_v3_through_the_public_probes_auth(
    swift_cluster: SwiftCluster, tmp_path: Path
) -> None:
    password = "ks-fetch-5a6b7c"
    # the catalog names the Swift proxy's host: a connection the policy must allow
    limits = dataclasses.replace(DEFAULT_LIMITS, allow_host=lambda h: h == swift_cluster.host)
    with KeystoneStub(swift_cluster, password=password) as keystone:
        host = keystone.auth_url.removeprefix("http://")
        url = f"swift+http://demo%3Aglance:{password}@{host}/glance/big"
        result = fetch_image_sync(
            [url], tmp_path / "img", checksum=sha256(BIG), sidecar_url=dead_sidecar(), limits=limits
        )
        assert (tmp_path / "img").read_bytes() == BIG and keystone.token_requests == 1
        assert password not in json.dumps(result.summary())
        with pytest.raises(FetchFailed) as refused:  # without the policy: not followed
            fetch_image_sync([url], tmp_path / "other", size=1 << 20, sidecar_url=dead_sidecar())
        assert "storage URL on another host" in str(refused.value)


def test_files_and_http_together(http_servers: Servers, tmp_path: Path) -> None:
    content = pattern(6 * MIB, "fetch-file")
    source = tmp_path / "source"
    source.write_bytes(content)
    server = http_servers("127.0.0.2", content=content, bandwidth=2 * MIB)
    result = fetch_image_sync(
        [server.url("/img"), source.as_uri()],
        tmp_path / "img",
        checksum=sha256(content),
        sources=2,
        sidecar_url=dead_sidecar(),
    )
    assert (tmp_path / "img").read_bytes() == content
    assert result.bytes_by_source[source.as_uri()] > 0


def test_glance_image_record_gives_locations_size_and_multihash(
    http_servers: Servers, tmp_path: Path
) -> None:
    content = pattern(2 * MIB, "fetch-glance")
    import hashlib

    store = http_servers("127.0.0.2", content=content)
    record = {
        "id": "img-1",
        "size": len(content),
        "checksum": hashlib.md5(content).hexdigest(),
        "os_hash_algo": "sha512",
        "os_hash_value": hashlib.sha512(content).hexdigest(),
        "locations": [{"url": store.url("/img"), "metadata": {"store": "web"}}],
        "direct_url": store.url("/img"),
    }
    glance = http_servers("127.0.0.3", objects={"/v2/images/img-1": json.dumps(record).encode()})
    out = tmp_path / "img"
    done, summary = fetch_cli(
        "--image",
        "img-1",
        "--glance",
        glance.url(""),
        "--token",
        "tok-123",
        "-o",
        str(out),
        "--sidecar",
        dead_sidecar(),
    )
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == content
    assert summary["checksum"].startswith("sha512:")
    assert glance.requests()[0].headers["x-auth-token"] == "tok-123"
    # locations hidden: only direct_url
    hidden = {k: v for k, v in record.items() if k != "locations"}
    glance.objects["/v2/images/img-1"] = json.dumps(hidden).encode()
    result = asyncio.run(
        fetch_glance_image("img-1", glance.url(""), tmp_path / "again", sidecar_url=dead_sidecar())
    )
    assert result.checksum is not None and result.checksum.startswith("sha512:")
    # a record whose hash does not match what the stores serve: exit 3
    record["os_hash_value"] = "0" * 128
    glance.objects["/v2/images/img-1"] = json.dumps(record).encode()
    with pytest.raises(FetchFailed) as failed:
        asyncio.run(
            fetch_glance_image(
                "img-1", glance.url(""), tmp_path / "bad", sidecar_url=dead_sidecar()
            )
        )
    assert failed.value.exit_code == 3 and not (tmp_path / "bad").exists()
