"""Backend identity and credential redaction for location URLs.

Measurements belong to a storage *backend* (an endpoint shared by every image
stored there), not to one image, so the key must be stable across images and
must never carry a credential: it ends up in SQLite, logs and Prometheus labels.

Credentials ride inside Glance location URLs (swift, s3, http userinfo). Like
glance_store, the userinfo ends at the *last* ``@`` after ``scheme://``, which
also catches passwords containing a raw ``/``, ``?`` or ``#``. The price: an
http path with a raw ``@`` (write it as ``%40``) is read as userinfo too, and a
display of such a URL loses the part before the ``@``. Safe beats pretty.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

#: Glance's scheme -> store name map (URL schemes compared lower-case).
SCHEME_TO_STORE: dict[str, str] = {
    "file": "file",
    "filesystem": "file",
    "http": "http",
    "https": "http",
    "rbd": "rbd",
    "swift": "swift",
    "swift+http": "swift",
    "swift+https": "swift",
    "s3": "s3",
    "s3+http": "s3",
    "s3+https": "s3",
    "cinder": "cinder",
    "vsphere": "vmware",
}

#: Stores reached over the network: a location's key is ``family://host:port``, its family
#: the scheme (but see :data:`_BARE_SCHEMES`), its transport the family's last part
#: (``swift+http`` -> ``http``).
_NETWORK_STORES = frozenset({"http", "swift", "s3"})
#: A bare ``swift`` or ``s3`` scheme means its https form.
_BARE_SCHEMES = {"swift": "swift+https", "s3": "s3+https"}
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Backend:
    """Where a location's bytes come from, as far as measurement is concerned."""

    key: str
    """Credential-free identity, e.g. ``https://mirror.example:443`` or ``rbd://<fsid>/<pool>``."""
    store: str | None
    """Glance store name (``file``, ``http``, ``rbd``, ...); ``None`` for ``swift+config``."""
    scheme: str
    """Normalised scheme: ``swift`` -> ``swift+https``, ``s3`` -> ``s3+https``."""
    host: str | None = None
    """Lower-case host name or IP literal, for network backends."""
    port: int | None = None
    """Explicit or scheme-default port, for network backends."""
    rbd_fsid: str | None = None
    """The Ceph cluster of an ``rbd`` location (the pool is in ``key``)."""
    path: str | None = None
    """Local path for ``file`` locations (sensitive: keep it out of logs and labels)."""

    @property
    def transport(self) -> str | None:
        """``http`` or ``https`` for network backends: the last part of the scheme."""
        return None if self.host is None else self.scheme.rpartition("+")[2]


def scheme_of(url: str) -> str:
    """Lower-case scheme of a URL, tolerating surrounding white space; ``""`` if none."""
    return urlsplit(url.strip()).scheme


def store_of(url: str) -> str | None:
    """Glance store name for a URL, or ``None`` when no store handles its scheme."""
    return SCHEME_TO_STORE.get(scheme_of(url))


def _split_scheme(url: str) -> tuple[str, str]:
    text = url.strip()
    scheme = urlsplit(text).scheme
    if not scheme:
        raise ValueError("location URL has no scheme")
    marker = text.find(":")
    rest = text[marker + 1 :]
    if not rest.startswith("//"):
        raise ValueError(f"{scheme} URL has no '//' authority")
    return scheme, rest[2:]


def _cut_userinfo(rest: str) -> str:
    """Drop everything through the last ``@``: userinfo, whatever characters it holds."""
    return rest.rpartition("@")[2]


_AUTHORITY_END = re.compile(r"[/?#]")
_PATH_END = re.compile(r"[?#]")
_BAD_HOST = re.compile(r"[ /\\<>\"'`{}|^]")


def _cut_at(text: str, stops: re.Pattern[str]) -> tuple[str, str]:
    """Split ``text`` before the first match of ``stops`` (a hot path: one regex search)."""
    match = stops.search(text)
    cut = match.start() if match else len(text)
    return text[:cut], text[cut:]


def redact_url(url: str) -> str:
    """The URL with userinfo, query and fragment removed: safe to store, log and show.

    Never raises: an unparseable URL redacts to ``"<unparseable URL>"``.
    """
    if not isinstance(url, str):
        return "<not a URL>"
    try:
        scheme, rest = _split_scheme(url)
    except ValueError:
        text = url.strip()
        if "@" in text or "?" in text or "#" in text:
            return "<unparseable URL>"
        return text
    rest = _cut_userinfo(rest)
    rest, _ = _cut_at(rest, _PATH_END)
    return f"{scheme}://{rest}"


def _parse_hostport(authority: str, url_scheme: str) -> tuple[str, int | None]:
    if not authority:
        raise ValueError(f"{url_scheme} URL has no host")
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise ValueError(f"{url_scheme} URL has an unterminated IPv6 address")
        host = authority[1:end]
        try:
            host = ipaddress.IPv6Address(host.split("%")[0]).compressed
        except ValueError:
            raise ValueError(f"{url_scheme} URL has an invalid IPv6 address") from None
        host = f"[{host}]"
        tail = authority[end + 1 :]
        if tail and not tail.startswith(":"):
            raise ValueError(f"{url_scheme} URL has junk after the IPv6 address")
        port_text = tail[1:] if tail else ""
    else:
        if authority.count(":") > 1:
            raise ValueError(f"{url_scheme} URL has an IPv6 address without [brackets]")
        host, _, port_text = authority.partition(":")
        host = unquote(host).lower()
        if not host or _BAD_HOST.search(host):
            raise ValueError(f"{url_scheme} URL has an invalid host")
    if port_text == "":
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{url_scheme} URL has an invalid port")
    return host, int(port_text)


def _network_backend(scheme: str, rest: str) -> Backend:
    family = _BARE_SCHEMES.get(scheme, scheme)
    transport = family.rpartition("+")[2]
    authority, _ = _cut_at(_cut_userinfo(rest), _AUTHORITY_END)
    host, port = _parse_hostport(authority, scheme)
    port = port or _DEFAULT_PORTS[transport]
    return Backend(
        key=f"{family}://{host}:{port}",
        store=SCHEME_TO_STORE[scheme],
        scheme=family,
        host=host,
        port=port,
    )


def _rbd_backend(rest: str) -> Backend:
    path, _ = _cut_at(_cut_userinfo(rest), _PATH_END)
    pieces = path.split("/")
    if len(pieces) == 1 and pieces[0]:
        return Backend(key="rbd://default", store="rbd", scheme="rbd")
    if len(pieces) != 4 or not all(pieces[:3]):
        raise ValueError("rbd URL must be rbd://<image> or rbd://<fsid>/<pool>/<image>/<snap>")
    fsid, pool = unquote(pieces[0]), unquote(pieces[1])
    return Backend(
        key=f"rbd://{quote(fsid, safe='')}/{quote(pool, safe='')}",
        store="rbd",
        scheme="rbd",
        rbd_fsid=fsid,
    )


def _under(path: str, root: str) -> bool:
    root = root.rstrip("/") or "/"
    return path == root or path.startswith(root if root == "/" else root + "/")


MAX_MOUNT_DEPTH = 32
"""Path components looked at to find a file's mount point: at most about 3 x 32 file
system calls per URL, whatever its length (a mount point deeper than this is not seen;
name the directory in ``file_roots`` instead)."""


def _is_mount(path: str) -> bool:
    """``os.path.ismount`` for an absolute path in two ``lstat`` calls (the kernel
    resolves ``path/..``; ``ismount`` resolves it in Python, one call per component)."""
    try:
        here = os.lstat(path)
        if stat.S_ISLNK(here.st_mode):
            return False
        parent = os.lstat(os.path.join(path, ".."))
    except (OSError, ValueError):
        return False
    return here.st_dev != parent.st_dev or here.st_ino == parent.st_ino


def _mount_point(path: str) -> str:
    parts = path.split("/", MAX_MOUNT_DEPTH + 1)
    probe = "/".join(parts[: MAX_MOUNT_DEPTH + 1]) or "/"
    while not os.path.exists(probe) and probe != "/":
        probe = os.path.dirname(probe)
    while not _is_mount(probe) and probe != "/":
        probe = os.path.dirname(probe)
    return probe


def _file_backend(rest: str, file_roots: Iterable[str]) -> Backend:
    _, slash, path = rest.partition("/")
    path, _ = _cut_at(slash + path, _PATH_END)
    path = os.path.normpath(unquote(path)) if path else ""
    if not path.startswith("/"):
        raise ValueError("file URL must hold an absolute path: file:///path")
    roots = sorted((os.path.normpath(r) for r in file_roots), key=len, reverse=True)
    root = next((r for r in roots if _under(path, r)), None) or _mount_point(path)
    return Backend(key=f"file://{quote(root)}", store="file", scheme="file", path=path)


def backend_of(url: str, *, file_roots: Iterable[str] = ()) -> Backend:
    """The backend a location URL belongs to.

    ``file_roots`` are directories that each count as one backend (for example
    Glance's ``filesystem_store_datadir``); other file paths map to the mount
    point that holds them. Raises ``ValueError`` with a credential-free message
    for a URL this project cannot place, ``TypeError`` for a non-string.
    """
    if not isinstance(url, str):
        raise TypeError(f"location URL must be a string, got {type(url).__name__}")
    scheme, rest = _split_scheme(url)
    if SCHEME_TO_STORE.get(scheme) in _NETWORK_STORES:
        return _network_backend(scheme, rest)
    if scheme == "rbd":
        return _rbd_backend(rest)
    if scheme in ("file", "filesystem"):
        return _file_backend(rest, file_roots)
    authority, tail = _cut_at(_cut_userinfo(rest), _AUTHORITY_END)
    if scheme == "cinder":
        store_id = authority if tail.strip("/") else "default"
        return Backend(
            key=f"cinder://{quote(unquote(store_id), safe='')}", store="cinder", scheme=scheme
        )
    if scheme == "vsphere":
        host, port = _parse_hostport(authority, scheme)
        suffix = f":{port}" if port else ""
        return Backend(
            key=f"vsphere://{host}{suffix}", store="vmware", scheme=scheme, host=host, port=port
        )
    if scheme == "swift+config":
        if not authority:
            raise ValueError("swift+config URL has no reference")
        return Backend(
            key=f"swift+config://{quote(unquote(authority), safe='')}", store=None, scheme=scheme
        )
    raise ValueError(f"unsupported URL scheme {scheme!r}")
