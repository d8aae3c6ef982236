"""The swift probe against a real Swift cluster (tempauth) on loopback."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from probes import ProbeLimits, Reason, SwiftCredentials, TokenCache, probe_url
from probes.gate import Gate
from probes.report import to_json, to_table
from probes.swift import AuthFailed, auth_plan, authenticate, parse
from probes.target import ProbeTarget, Token
from tests.support.keystone_stub import KeystoneStub
from tests.support.swift_cluster import SwiftCluster

LIMITS = ProbeLimits(max_bytes=32 * 1024, timeout=10)


def test_v1_auth_then_ranged_get(swift_cluster: SwiftCluster) -> None:
    result = asyncio.run(probe_url(swift_cluster.location("glance", "big"), LIMITS))
    assert (result.outcome, result.kind, result.status) == ("ok", "swift", 206)
    assert result.bytes == 32 * 1024 and result.range_honoured is True
    assert result.phases.auth is not None and result.phases.first_byte is not None
    assert result.backend == f"swift+http://127.0.0.5:{swift_cluster.ports['proxy']}"


def test_token_is_reused_across_probes(swift_cluster: SwiftCluster) -> None:
    cache = TokenCache()
    url = swift_cluster.location("glance", "big")
    before = swift_cluster.auth_requests()
    first = asyncio.run(probe_url(url, LIMITS, swift_tokens=cache))
    second = asyncio.run(probe_url(url, LIMITS, swift_tokens=cache))
    assert first.ok and second.ok
    assert first.phases.auth is not None and second.phases.auth is None
    assert cache.auth_requests == 1
    # Wait until the proxy logged both object GETs, then count auth requests.
    swift_cluster.wait_for_log("GET /v1/AUTH_test/glance/big", count=2)
    assert swift_cluster.auth_requests() - before == 1


def test_revoked_cached_token_is_replaced_once(swift_cluster: SwiftCluster) -> None:
    cache = TokenCache()
    url = swift_cluster.location("glance", "big")
    assert asyncio.run(probe_url(url, LIMITS, swift_tokens=cache)).ok
    (key,) = cache._tokens
    storage = cache._tokens[key].storage_url
    cache.put(key, Token(token="AUTH_tkrevoked", storage_url=storage, expires_at=4e9))
    result = asyncio.run(probe_url(url, LIMITS, swift_tokens=cache))
    assert (result.outcome, result.status) == ("ok", 206)
    assert cache.auth_requests == 2


def test_bad_key_is_auth(swift_cluster: SwiftCluster) -> None:
    secret = "bad-key-9d8e7f"
    url = swift_cluster.location("glance", "big", key=secret)
    result = asyncio.run(probe_url(url, LIMITS))
    assert (result.outcome, result.error_class, result.status) == ("error", "auth", 401)
    for text in (repr(result), to_json(result), to_table(result)):
        assert secret not in text and "tester" not in text


def test_missing_object_is_missing(swift_cluster: SwiftCluster) -> None:
    result = asyncio.run(probe_url(swift_cluster.location("glance", "no-such-image"), LIMITS))
    assert (result.outcome, result.error_class, result.status) == ("error", "missing", 404)


def test_multi_tenant_url_needs_configured_credentials(swift_cluster: SwiftCluster) -> None:
    storage, _ = swift_cluster.token()
    url = f"swift+http://{storage.removeprefix('http://')}/glance/big"
    bare = asyncio.run(probe_url(url, LIMITS))
    assert (bare.outcome, bare.error_class) == ("error", "auth")
    assert "credentials" in bare.message and bare.phases.first_byte is None

    creds = SwiftCredentials(
        user=swift_cluster.user, key=swift_cluster.key, auth_url=swift_cluster.auth_url
    )
    configured = asyncio.run(probe_url(url, LIMITS, credentials=creds))
    assert (configured.outcome, configured.status) == ("ok", 206)
    assert swift_cluster.key not in to_json(configured)


def test_keystone_v3_password_auth(swift_cluster: SwiftCluster) -> None:
    password = "ks-pass-4c5d6e"
    # the catalog names the Swift proxy on another host (127.0.0.5): allowed by policy only
    limits = replace(LIMITS, allow_host=lambda host: host == swift_cluster.host)
    with KeystoneStub(swift_cluster, password=password) as keystone:
        host = keystone.auth_url.removeprefix("http://")
        url = f"swift+http://demo%3Aglance:{password}@{host}/glance/big"
        cache = TokenCache()
        first = asyncio.run(probe_url(url, limits, swift_tokens=cache))
        second = asyncio.run(probe_url(url, limits, swift_tokens=cache))
        assert (first.outcome, first.status, second.outcome) == ("ok", 206, "ok")
        assert keystone.token_requests == 1
        assert first.backend == f"swift+http://127.0.0.7:{keystone.port}"

        wrong = asyncio.run(probe_url(url.replace(password, "nope-123"), limits))
        assert (wrong.outcome, wrong.error_class, wrong.status) == ("error", "auth", 401)
        for text in (repr(first), to_json(first), to_table(wrong)):
            assert password not in text


def test_glance_url_shapes() -> None:
    single = parse("swift+http://acct%3Auser:k%3Aey@auth.example:8080/auth/v1.0/glance/img")
    assert single.base_url == "http://auth.example:8080/auth/v1.0"
    assert (single.user, single.key) == ("acct:user:k", "ey")  # glance splits at the last ':'
    assert (single.container, single.obj) == ("glance", "img")
    multi = parse("swift://proxy.example/v1/AUTH_p/glance/img")
    assert multi.base_url == "https://proxy.example/v1/AUTH_p" and multi.user is None


def test_keystone_catalog_naming_another_host_is_not_followed(swift_cluster: SwiftCluster) -> None:
    """Keystone on 127.0.0.7 names the real proxy on 127.0.0.5: with only .7 allowed
    (``learn_from = ["127.0.0.7"]``) the token never reaches the proxy."""
    password = "ks-pass-gate-77"
    needle = "GET /v1/AUTH_test/glance/big"
    with KeystoneStub(swift_cluster, password=password) as keystone:
        host = keystone.auth_url.removeprefix("http://")
        url = f"swift+http://demo%3Aglance:{password}@{host}/glance/big"
        before = sum(needle in line for line in swift_cluster.access_log())
        only_keystone = replace(LIMITS, allow_host=lambda h: h == "127.0.0.7")
        refused = asyncio.run(probe_url(url, only_keystone))
        assert (refused.outcome, refused.reason) == ("not_measurable", Reason.NOT_ALLOWED)
        assert "(127.0.0.5) is not allowed" in refused.message
        assert keystone.token_requests == 1
        # one allowed probe after it: its GET is the only new one in the proxy's log
        allowed = replace(LIMITS, allow_host=lambda h: h == swift_cluster.host)
        assert asyncio.run(probe_url(url, allowed)).ok
        swift_cluster.wait_for_log(needle, count=before + 1)
        assert sum(needle in line for line in swift_cluster.access_log()) == before + 1


def test_public_authenticate_v1_and_keystone_v3(swift_cluster: SwiftCluster) -> None:
    """``probes.swift.auth_plan`` + ``authenticate``: what the fetch transport uses."""
    location = parse(swift_cluster.location("glance", "big"))
    creds, auth_url, storage_url, version = auth_plan(location, None)
    assert (auth_url, storage_url, version) == (swift_cluster.auth_url, None, "1")
    gate = Gate.of(ProbeTarget(url=swift_cluster.auth_url), LIMITS)
    token = asyncio.run(authenticate(creds, auth_url, version, LIMITS, gate))
    assert token.token and token.storage_url and swift_cluster.host in token.storage_url
    with pytest.raises(AuthFailed) as refused:
        asyncio.run(authenticate(replace(creds, key="wrong-key"), auth_url, "1", LIMITS, gate))
    assert refused.value.error_class == "auth" and "wrong-key" not in str(refused.value)

    password = "ks-pass-7e8f9a"
    with KeystoneStub(swift_cluster, password=password) as keystone:
        creds = SwiftCredentials(user="demo:glance", key=password, auth_url=keystone.auth_url)
        multi = parse(
            f"swift+http://{swift_cluster.host}:{swift_cluster.ports['proxy']}/glance/big"
        )
        creds, auth_url, storage_url, version = auth_plan(multi, creds)
        assert (auth_url, version) == (keystone.auth_url, "3") and storage_url is not None
        keystone_gate = Gate.of(ProbeTarget(url=keystone.auth_url), LIMITS)
        token = asyncio.run(authenticate(creds, auth_url, version, LIMITS, keystone_gate))
        assert token.token and keystone.token_requests == 1

    with pytest.raises(AuthFailed, match="no credentials"):
        auth_plan(multi, None)
    with pytest.raises(AuthFailed, match="version 2"):
        auth_plan(location, SwiftCredentials(user="a:b", key="k", auth_version="2"))  # type: ignore[arg-type]
