"""Sigstore's Rekor v2 (rekor-tiles, POSIX backend) and timestamp-authority as test servers.

Binaries come from ``scripts/build-test-servers.sh`` (pinned module versions, cached in .cache/go-servers).
``require_servers()`` skips with the reason when Go is absent or the build has not run. Each server gets
free loopback ports and a temporary folder (Rekor: an Ed25519 checkpoint key and the tile storage), and is
ready when its health endpoint answers.
"""

from __future__ import annotations

import functools
import http.client
import shutil
import signal
import subprocess
import tempfile
import threading
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.support.broker import free_port
from tests.support.helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = ROOT / ".cache" / "go-servers"
REKOR_BIN = BIN_DIR / "rekor-server"
TSA_BIN = BIN_DIR / "timestamp-server"
REKOR_ORIGIN = "rekor.customs.example"


def require_servers() -> None:
    """Skip the calling test when the servers cannot run here, naming why."""
    if shutil.which("go") is None and not (REKOR_BIN.exists() and TSA_BIN.exists()):
        pytest.skip("Go is not installed: Rekor v2 and the Sigstore TSA cannot be built")
    for b in (REKOR_BIN, TSA_BIN):
        if not b.exists():
            pytest.skip(f"{b.relative_to(ROOT)} missing: run scripts/build-test-servers.sh")


def _get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return int(r.status), bytes(r.read())
    except (OSError, http.client.HTTPException):
        return 0, b""


class _Proc:
    def __init__(self, name: str, folder: Path) -> None:
        self.name = name
        self.folder = folder
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def _spawn(self, argv: list[str], ready_url: str) -> None:
        self.starts += 1
        log = (self.folder / f"{self.name}-{self.starts}.log").open("wb")
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.folder)
        log.close()
        ok = wait_until(lambda: self.proc is not None and self.proc.poll() is None and _get(ready_url)[0] == 200,
                        timeout=60, step=0.1)
        if not ok:
            self.stop()
            tail = (self.folder / f"{self.name}-{self.starts}.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.name} did not become ready:\n{tail}")

    def stop(self) -> None:
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)

    def kill(self) -> None:
        """SIGKILL, as a crash or power loss would end it."""
        p, self.proc = self.proc, None
        if p is not None and p.poll() is None:
            p.kill()
            p.wait(10)


class RekorV2(_Proc):
    """rekor-server (POSIX/Tessera) with an Ed25519 checkpoint key; ``storage`` holds tiles and checkpoint."""

    def __init__(self, *, checkpoint_interval: str = "300ms") -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="rekor-")
        super().__init__("rekor", Path(self._tmp.name))
        key = ed25519.Ed25519PrivateKey.generate()
        self.key_file = self.folder / "rekor-key.pem"
        self.key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
        self.public_key_file = self.folder / "rekor-pub.pem"
        self.public_key_file.write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        self.storage = self.folder / "log"
        self.origin = REKOR_ORIGIN
        self.interval = checkpoint_interval
        self.port, self.grpc_port, self.metrics_port = free_port(), free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.storage.mkdir()
        self.start()
        # the POSIX backend's reads are static files: nginx in production, the standard library here
        handler = functools.partial(_QuietFiles, directory=str(self.storage))
        self._files = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.tiles_url = f"http://127.0.0.1:{self._files.server_address[1]}"
        self._files_thread = threading.Thread(target=self._files.serve_forever, name="rekor-tiles-http",
                                              daemon=True)
        self._files_thread.start()

    def start(self) -> None:
        self._spawn([str(REKOR_BIN), "serve", "--http-address=127.0.0.1", f"--http-port={self.port}",
                     "--grpc-address=127.0.0.1", f"--grpc-port={self.grpc_port}",
                     f"--http-metrics-port={self.metrics_port}", f"--hostname={self.origin}",
                     f"--storage-dir={self.storage}", f"--signer-filepath={self.key_file}",
                     f"--checkpoint-interval={self.interval}", "--batch-max-age=50ms"],
                    self.url + "/healthz")

    def restart(self) -> None:
        self.stop()
        self.start()

    def checkpoint(self) -> str:
        """The log's newest published checkpoint note (POSIX backend: a file beside the tiles)."""
        return (self.storage / "checkpoint").read_text()

    def close(self) -> None:
        self.stop()
        self._files.shutdown()
        self._files.server_close()
        self._files_thread.join(10)
        self._tmp.cleanup()


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class SigstoreTsa(_Proc):
    """timestamp-server with its in-memory signer (test only); its served chain split into ``root_file``
    (the root alone) and ``ca_file`` (root and intermediate); the leaf comes in each token."""

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="sigstore-tsa-")
        super().__init__("tsa", Path(self._tmp.name))
        self.port = free_port()
        base = f"http://127.0.0.1:{self.port}"
        self.url = base + "/api/v1/timestamp"
        self._spawn([str(TSA_BIN), "serve", "--host=127.0.0.1", f"--port={self.port}",
                     "--timestamp-signer=memory", "--disable-ntp-monitoring", "--log-type=prod"],
                    base + "/ping")
        status, chain = _get(base + "/api/v1/timestamp/certchain")
        if status != 200:
            self.close()
            raise RuntimeError(f"timestamp-server certchain answered {status}")
        self.chain_file = self.folder / "chain.pem"
        self.chain_file.write_bytes(chain)
        certs = [c.public_bytes(serialization.Encoding.PEM) for c in x509.load_pem_x509_certificates(chain)]
        self.root_file = self.folder / "root.pem"  # chain order: leaf, intermediate, root
        self.root_file.write_bytes(certs[-1])
        self.ca_file = self.folder / "ca.pem"  # what [anchor.tsa] ca_file takes: root and intermediates
        self.ca_file.write_bytes(b"".join(certs[1:]))

    def close(self) -> None:
        self.stop()
        self._tmp.cleanup()
