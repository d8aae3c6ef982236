"""``http``/``https`` locations: a ranged GET of the first ``max_bytes`` bytes.

Redirects are followed up to ``max_redirects`` times, and only to the same
host unless ``ProbeLimits.allow_host`` says yes: the node must not become a
way to fetch arbitrary URLs. A redirect we may not follow makes the backend
*not measurable* (a config question), not failed. Basic-auth userinfo in the
URL (Glance's http store allows it) is sent only to the original host.
Userinfo ends at the last ``@`` (strategies.backends' rule), so the host
contacted is always the host in the backend key.
"""

from __future__ import annotations

import base64
from urllib.parse import unquote, urljoin, urlsplit

from probes import fetch
from probes.common import Run, measure
from probes.result import ProbeResult
from probes.target import ProbeLimits, ProbeTarget

REDIRECTS = frozenset({301, 302, 303, 307, 308})


def split_userinfo(url: str) -> tuple[str, str | None, str | None]:
    """``(url without userinfo, user, password)``; userinfo ends at the last ``@``
    after ``scheme://`` (the rule strategies.backends uses for redaction)."""
    scheme, sep, rest = url.strip().partition("://")
    if not sep or "@" not in rest:
        return url.strip(), None, None
    userinfo, _, tail = rest.rpartition("@")
    user, colon, password = userinfo.partition(":")
    return f"{scheme}://{tail}", unquote(user), unquote(password) if colon else None


def range_header(max_bytes: int) -> dict[str, str]:
    return {"Range": f"bytes=0-{max_bytes - 1}"}


async def probe(target: ProbeTarget, limits: ProbeLimits) -> ProbeResult:
    url, user, password = split_userinfo(target.url)
    secrets = tuple(s for s in (user, password) if s)
    return await measure(
        "http", target, limits, lambda run: _run(run, url, user, password), secrets
    )


async def _run(run: Run, url: str, user: str | None, password: str | None) -> None:
    limits = run.limits
    origin = urlsplit(url)
    headers = {"User-Agent": "location-sidecar-probe", **range_header(limits.max_bytes)}
    if user is not None:
        token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    for hop in range(limits.max_redirects + 1):
        fetched = await fetch.get(
            url, headers, limits, run.phases, max_bytes=limits.max_bytes, progress=run.progress
        )
        location = fetched.headers.get("location")
        if fetched.status not in REDIRECTS or not location:
            run.take_response(fetched)
            return
        run.status = fetched.status
        if hop == limits.max_redirects:
            run.fail("server", f"more than {limits.max_redirects} redirects")
            return
        following = urlsplit(urljoin(url, location))
        host = following.hostname or ""
        if following.scheme not in ("http", "https"):
            run.not_measurable(f"redirect to a {following.scheme or 'relative'} URL not followed")
            return
        if host != origin.hostname:
            if limits.allow_host is None or not limits.allow_host(host):
                run.not_measurable(
                    f"redirect to another host ({host}) is not allowed", refused=True
                )
                return
            headers.pop("Authorization", None)
        url = following._replace(netloc=following.netloc.rpartition("@")[2]).geturl()
