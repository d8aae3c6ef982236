"""A real S3 endpoint (moto's server) on a loopback address, with auth enforced.

moto runs in its own process (its state and auth switch are module globals),
an IAM user with an access key is made for the tests, a bucket is filled, and
then auth is switched on so that wrong keys are refused as AWS would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field

import botocore.session  # type: ignore[import-untyped]
import httpx

from tests.support.processes import free_port, stop_process, wait_until


@dataclass
class S3Server:
    host: str = "127.0.0.4"
    port: int = 0
    access_key: str = ""
    secret_key: str = ""
    region: str = "us-east-1"
    process: subprocess.Popen[bytes] | None = None
    objects: dict[str, bytes] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def location(self, bucket: str, key: str, access: str = "", secret: str = "") -> str:
        """A Glance-style ``s3+http://ACCESS:SECRET@host:port/bucket/key`` URL."""
        access, secret = access or self.access_key, secret or self.secret_key
        return f"s3+http://{access}:{secret}@{self.host}:{self.port}/{bucket}/{key}"

    def client(self, service: str, access: str = "setup", secret: str = "setup") -> object:
        return botocore.session.get_session().create_client(
            service,
            region_name=self.region,
            endpoint_url=self.endpoint,
            aws_access_key_id=access,
            aws_secret_access_key=secret,
        )

    def start(self, bucket: str, objects: dict[str, bytes], timeout: float = 30.0) -> S3Server:
        self.port = free_port(self.host)
        env = {**os.environ, "MOTO_CALL_RESET_API": "false"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )

        def answers() -> bool:
            try:
                return httpx.get(f"{self.endpoint}/moto-api/", timeout=1).status_code < 500
            except httpx.HTTPError:
                return False

        wait_until(answers, timeout, "moto server did not answer", self.process)
        iam = self.client("iam")
        iam.create_user(UserName="prober")  # type: ignore[attr-defined]
        iam.put_user_policy(  # type: ignore[attr-defined]
            UserName="prober",
            PolicyName="s3",
            PolicyDocument='{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
            '"Action": "s3:*", "Resource": "*"}]}',
        )
        key = iam.create_access_key(UserName="prober")["AccessKey"]  # type: ignore[attr-defined]
        self.access_key, self.secret_key = key["AccessKeyId"], key["SecretAccessKey"]
        s3 = self.client("s3")
        s3.create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
        for name, body in objects.items():
            s3.put_object(Bucket=bucket, Key=name, Body=body)  # type: ignore[attr-defined]
        self.objects = dict(objects)
        # From now on every request must be signed by a known key.
        httpx.post(f"{self.endpoint}/moto-api/reset-auth", content=b"0", timeout=5)
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None
