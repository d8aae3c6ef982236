from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies.backends import backend_of, redact_url, store_of


@pytest.mark.parametrize(
    ("url", "key", "store"),
    [
        ("http://mirror.example/img", "http://mirror.example:80", "http"),
        ("https://Mirror.Example/img", "https://mirror.example:443", "http"),
        ("HTTPS://mirror.example:8443/a?b#c", "https://mirror.example:8443", "http"),
        ("http://user:pw@mirror.example/img", "http://mirror.example:80", "http"),
        ("http://[2001:db8::1]:8080/img", "http://[2001:db8::1]:8080", "http"),
        ("https://[2001:DB8:0:0::1]/img", "https://[2001:db8::1]:443", "http"),
        (
            "swift://acct%3Auser:key@keystone.example/v3/c/o",
            "swift+https://keystone.example:443",
            "swift",
        ),
        ("swift+https://keystone.example/v3/c/o", "swift+https://keystone.example:443", "swift"),
        ("swift+http://u:k@127.0.0.1:8080/auth/v1.0/c/o", "swift+http://127.0.0.1:8080", "swift"),
        ("swift+https://swift.example/v1/AUTH_abc/c/o", "swift+https://swift.example:443", "swift"),
        ("s3://AK:SK@s3.example/bucket/key", "s3+https://s3.example:443", "s3"),
        ("s3+http://AK:SK@127.0.0.1:9000/bucket/key", "s3+http://127.0.0.1:9000", "s3"),
        ("rbd://fsid-1/images/img-1/snap", "rbd://fsid-1/images", "rbd"),
        ("rbd://fs%2Fid/my%20pool/img/snap", "rbd://fs%2Fid/my%20pool", "rbd"),
        ("rbd://img-1", "rbd://default", "rbd"),
        ("cinder://store-a/vol-1", "cinder://store-a", "cinder"),
        ("cinder://vol-1", "cinder://default", "cinder"),
        (
            "vsphere://vc.example/folder/openstack_glance/i?dcPath=dc&dsName=ds",
            "vsphere://vc.example",
            "vmware",
        ),
        ("swift+config://ref1/container/object", "swift+config://ref1", None),
        ("  https://mirror.example/img  ", "https://mirror.example:443", "http"),
    ],
)
def test_backend_keys(url: str, key: str, store: str | None) -> None:
    backend = backend_of(url)
    assert backend.key == key
    assert backend.store == store


def test_passwords_with_quoted_and_raw_separators_never_reach_the_key() -> None:
    for password in ("p%40ss%3Aw", "p@ss:w", "p/ss#w?x", "p@@s"):
        backend = backend_of(f"swift+https://acct%3Auser:{password}@auth.example:5000/v3/c/o")
        assert backend.key == "swift+https://auth.example:5000"
        assert backend.host == "auth.example" and backend.port == 5000
        assert backend.transport == "https"


def test_file_backend_uses_configured_root_then_mount_point(tmp_path: object) -> None:
    backend = backend_of("file:///srv/glance/images/abc", file_roots=["/srv/glance/images"])
    assert backend.key == "file:///srv/glance/images"
    assert backend.path == "/srv/glance/images/abc"
    # Without a root the mount point holding the path (here at most "/") is the backend.
    assert backend_of("file:///nonexistent/dir/abc").key.startswith("file:///")
    longest = backend_of("file:///a/b/c", file_roots=["/a", "/a/b"])
    assert longest.key == "file:///a/b"
    assert backend_of("filesystem:///a/b/c", file_roots=["/a"]).store == "file"


@pytest.mark.parametrize(
    "url",
    [
        "",
        "no-scheme-here",
        "http:/one-slash",
        "http://",
        "http://host:0/x",
        "http://host:99999/x",
        "http://host:port/x",
        "http://[::1/x",
        "http://[nonsense]/x",
        "http://::1/x",
        "rbd://a/b",
        "rbd://a/b/c",
        "file://relative",
        "ftp://host/x",
        "swift+config:///c/o",
    ],
)
def test_malformed_urls_raise_value_error(url: str) -> None:
    with pytest.raises(ValueError):
        backend_of(url)


def test_error_messages_carry_no_credentials() -> None:
    with pytest.raises(ValueError) as info:
        backend_of("https://admin:hunter2@host:notaport/x")
    assert "hunter2" not in str(info.value) and "admin" not in str(info.value)


def test_non_string_url_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        backend_of(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("https://u:p@host/path?sig=1#frag", "https://host/path"),
        ("swift+https://a%3Au:k@auth/v3/c/o", "swift+https://auth/v3/c/o"),
        ("s3://AK:S/K@h/b/k", "s3://h/b/k"),
        ("http://u:p#w@host/x", "http://host/x"),
        ("file:///var/lib/glance/images/x", "file:///var/lib/glance/images/x"),
        ("not a url with a secret@host", "<unparseable URL>"),
    ],
)
def test_redaction(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


def test_store_map() -> None:
    assert store_of("FILE:///x") == "file"
    assert store_of("vsphere://h/x") == "vmware"
    assert store_of("swift+config://r/c/o") is None
    assert store_of("gopher://h/x") is None


_schemes = st.sampled_from(
    [
        "http",
        "https",
        "swift",
        "swift+http",
        "swift+https",
        "s3",
        "s3+http",
        "s3+https",
        "vsphere",
        "cinder",
        "rbd",
        "file",
        "ftp",
    ]
)
_secret_text = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF, exclude_characters="%"),
    min_size=8,
    max_size=24,
)


@settings(max_examples=1000)
@given(
    scheme=_schemes,
    user=st.text(min_size=0, max_size=10),
    secret=_secret_text,
    quoted=st.booleans(),
    host=st.sampled_from(["host.example", "127.0.0.2", "[::1]", "h"]),
    path=st.text(alphabet="abc/xyz-._", max_size=20),
)
def test_redaction_never_leaks_userinfo(
    scheme: str, user: str, secret: str, quoted: bool, host: str, path: str
) -> None:
    """Whatever the password holds, neither display nor key shows it."""
    secret = "SECRET" + secret
    password = quote(secret, safe="") if quoted else secret
    url = f"{scheme}://{quote(user, safe='')}:{password}@{host}/{path}"
    for shown in (redact_url(url),):
        assert "SECRET" not in shown
    try:
        key = backend_of(url).key
    except ValueError as exc:
        assert "SECRET" not in str(exc)
    else:
        assert "SECRET" not in key
