"""``s3``/``s3+http``/``s3+https`` locations: a SigV4-signed, path-style ranged GET.

Glance writes ``s3://ACCESS:SECRET@host[:port][/prefix]/bucket/key`` (the
object is the last path segment, the bucket the one before). Keys in the URL
win; otherwise ``ProbeTarget.credentials`` (an ``S3Credentials``) is used;
with neither the GET goes unsigned (a public bucket still answers). botocore
only signs; the request goes through the same timed fetch as http.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

from botocore.auth import S3SigV4Auth  # type: ignore[import-untyped]
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
from botocore.credentials import Credentials as BotoCredentials  # type: ignore[import-untyped]

from probes import fetch
from probes.common import Run, measure
from probes.result import ProbeResult
from probes.target import ProbeLimits, ProbeTarget, S3Credentials
from probes.urls import range_header, split_userinfo

_TRANSPORT = {"s3": "https", "s3+https": "https", "s3+http": "http"}
_CODE = re.compile(rb"<Code>([A-Za-z0-9.]{1,64})</Code>")


@dataclass(frozen=True, repr=False)
class S3Location:
    endpoint: str
    """``http(s)://host[:port][/prefix]``: no credentials."""
    bucket: str
    key: str
    credentials: S3Credentials | None

    @property
    def object_url(self) -> str:
        return f"{self.endpoint}/{quote(self.bucket)}/{quote(self.key, safe='/~')}"


def parse(url: str, fallback: S3Credentials | None = None) -> S3Location:
    """Split a Glance s3 URL; raises ``ValueError`` without echoing the URL."""
    bare, access, secret = split_userinfo(url)
    scheme, _, rest = bare.partition("://")
    transport = _TRANSPORT.get(scheme.lower())
    if transport is None:
        raise ValueError(f"not an s3 URL scheme: {scheme!r}")
    rest = re.split(r"[?#]", rest, maxsplit=1)[0]
    pieces = rest.split("/")
    if len(pieces) < 3 or not pieces[0] or not pieces[-1] or not pieces[-2]:
        raise ValueError("s3 URL must be s3://[KEY:SECRET@]host/bucket/object")
    key, bucket = unquote(pieces[-1]), unquote(pieces[-2])
    endpoint = f"{transport}://" + "/".join(p for p in pieces[:-2] if p)
    credentials = fallback
    if access and secret:
        region = fallback.region if fallback else "us-east-1"
        credentials = S3Credentials(access_key=access, secret_key=secret, region=region)
    return S3Location(endpoint=endpoint, bucket=bucket, key=key, credentials=credentials)


def signed_headers(location: S3Location, headers: dict[str, str]) -> dict[str, str]:
    """``headers`` plus SigV4 ``Authorization``/``X-Amz-*`` for a GET of the object."""
    creds = location.credentials
    if creds is None:
        return dict(headers)
    request = AWSRequest(method="GET", url=location.object_url, headers=dict(headers))
    signer = S3SigV4Auth(
        BotoCredentials(creds.access_key, creds.secret_key, creds.session_token), "s3", creds.region
    )
    signer.add_auth(request)
    return {str(k): str(v) for k, v in request.headers.items()}


async def probe(target: ProbeTarget, limits: ProbeLimits) -> ProbeResult:
    fallback = target.credentials if isinstance(target.credentials, S3Credentials) else None
    try:
        location = parse(target.url, fallback)
    except ValueError as exc:
        message = str(exc)

        async def invalid(run: Run) -> None:
            run.fail("local", message)

        return await measure("s3", target, limits, invalid)
    secrets = location.credentials.secrets() if location.credentials else ()
    return await measure("s3", target, limits, lambda run: _run(run, location), secrets)


async def _run(run: Run, location: S3Location) -> None:
    headers = {"User-Agent": "location-sidecar-probe", **range_header(run.limits.max_bytes)}
    fetched = await fetch.request(
        "GET",
        location.object_url,
        signed_headers(location, headers),
        run.limits,
        run.phases,
        gate=run.gate,
        max_bytes=run.limits.max_bytes,
        progress=run.progress,
        keep_body=2048,
    )
    run.take_response(fetched)
    if run.outcome == "error":
        code = _CODE.search(fetched.body)
        if code:
            run.message += f": {code.group(1).decode()}"
        if run.error_class == "auth" and location.credentials is None:
            run.message += " (no S3 credentials in the URL or the config)"
