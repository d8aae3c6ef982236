"""``http``/``https`` locations: a ranged GET of the first ``max_bytes`` bytes.

Redirects are followed up to ``max_redirects`` times, each one through the
probe's gate (``probes.gate``): the original host, or a host
``ProbeLimits.allow_host`` allows. The node must not become a way to fetch
arbitrary URLs; a redirect we may not follow makes the backend *not
measurable* (a config question), not failed. Basic-auth userinfo in the URL
(Glance's http store allows it) is sent only to the URL's own origin (scheme,
host and port): a redirect to another port, or from https to http on the same
host, is followed without it. Userinfo ends at the last ``@``
(strategies.backends' rule), so the host contacted is always the host in the
backend key.
"""

from __future__ import annotations

import base64

from probes import fetch
from probes.common import Run, measure
from probes.result import ProbeResult, Reason
from probes.target import ProbeLimits, ProbeTarget
from probes.urls import REDIRECTS, origin_of, range_header, redirect_target, split_userinfo


async def probe(target: ProbeTarget, limits: ProbeLimits) -> ProbeResult:
    url, user, password = split_userinfo(target.url)
    secrets = tuple(s for s in (user, password) if s)
    return await measure(
        "http", target, limits, lambda run: _run(run, url, user, password), secrets
    )


async def _run(run: Run, url: str, user: str | None, password: str | None) -> None:
    limits = run.limits
    origin = origin_of(url)
    headers = {"User-Agent": "location-sidecar-probe", **range_header(limits.max_bytes)}
    if user is not None:
        token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    for hop in range(limits.max_redirects + 1):
        fetched = await fetch.request(
            "GET",
            url,
            headers,
            limits,
            run.phases,
            gate=run.gate,
            max_bytes=limits.max_bytes,
            progress=run.progress,
        )
        location = fetched.headers.get("location")
        if fetched.status not in REDIRECTS or not location:
            run.take_response(fetched)
            return
        run.status = fetched.status
        if hop == limits.max_redirects:
            run.fail("server", f"more than {limits.max_redirects} redirects")
            return
        try:
            url = redirect_target(url, location)
        except ValueError as exc:
            run.not_measurable(str(exc), Reason.NOT_ALLOWED)
            return
        run.gate.check_url(url, "redirect to another host")  # NotAllowed ends the probe
        if not origin_of(url).same_as(origin):
            headers.pop("Authorization", None)  # only ever for the URL's own origin
