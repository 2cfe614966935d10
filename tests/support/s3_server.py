"""An S3-compatible server for the tests: moto's server as its own process on a free loopback port.

Not AWS, but a real HTTP S3 endpoint that boto3 talks to over the wire, with versioning, object lock
(COMPLIANCE retention refuses deletes) and conditional puts (``If-None-Match``). It does not check
``x-amz-checksum-sha256`` (AWS does), so the blob store checks the hash itself as well.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.broker import free_port
from tests.support.helpers import wait_until

BUCKET = "customs-evidence"


def moto_server_or_skip() -> str:
    exe = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    if not Path(exe).exists():
        pytest.skip("moto_server not installed (pip install 'moto[server]', see scripts/install-and-test.sh)")
    return exe


class S3Server:
    def __init__(self, port: int | None = None) -> None:
        self.exe = moto_server_or_skip()
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        """What a process needs to reach this server through boto3's usual environment."""
        return {"AWS_ENDPOINT_URL": self.url, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                "AWS_DEFAULT_REGION": "us-east-1"}

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.url, aws_access_key_id="test", aws_secret_access_key="test",
                            region_name="us-east-1")

    def start(self, *, locked_bucket: bool = True) -> S3Server:
        self.proc = subprocess.Popen([self.exe, "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env={**os.environ, **self.env})
        s3 = self.client()

        def up() -> bool:
            try:
                s3.list_buckets()
                return True
            except Exception:
                return False

        if not wait_until(up, timeout=60, step=0.2):
            self.stop()
            raise RuntimeError(f"moto_server did not answer on {self.url}")
        if locked_bucket:
            s3.create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
            s3.put_object_lock_configuration(Bucket=BUCKET, ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}}})
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)
        self.proc = None
