"""A real Mosquitto for tests and benchmarks: test PKI, generated config, free loopback port.

TLS mode (default) is what a customs broker runs: ``require_certificate``, the certificate CN as
the username, and the least-privilege ACL shipped in agent/customs/broker/acl.conf.
Plain mode (``tls=False``) is an anonymous TCP listener
for local use and benchmarks.
"""

from __future__ import annotations

import datetime as dt
import getpass
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.customs.broker import render_acl
from agent.wire.mqtt_settings import MqttConfig, TlsConfig

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    os.chmod(path, 0o600)


@dataclass(frozen=True)
class ClientCert:
    name: str
    cert: Path
    key: Path
    ca: Path


class Pki:
    """Test CA, a server certificate for localhost, and client certificates on demand (CN = identity)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Broker CA")])
        now = dt.datetime.now(dt.UTC)
        self._ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                    .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
                    .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=2))
                    .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                    .sign(self._key, hashes.SHA256()))
        self.ca = directory / "ca.pem"
        self.ca.write_bytes(self._ca.public_bytes(serialization.Encoding.PEM))
        self.server = self._issue("localhost", server=True)
        self._clients: dict[str, ClientCert] = {}

    def _issue(self, cn: str, *, server: bool = False) -> ClientCert:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        b = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
             .issuer_name(self._ca.subject).public_key(key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=2))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.ExtendedKeyUsage(
                 [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
        if server:
            b = b.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        cert = b.sign(self._key, hashes.SHA256())
        out = ClientCert(cn, self.dir / f"{cn}.crt", self.dir / f"{cn}.key", self.ca)
        out.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(out.key, key)
        return out

    def client(self, cn: str) -> ClientCert:
        if cn not in self._clients:
            self._clients[cn] = self._issue(cn)
        return self._clients[cn]


class Mosquitto:
    """One broker process with its own directory, config and port."""

    def __init__(self, workdir: Path, *, tls: bool = True, pki: Pki | None = None,
                 officers: Sequence[str] = ("officer-alice",), ingests: Sequence[str] = ("ingest-1",),
                 max_packet_size: int | None = None, message_size_limit: int | None = None,
                 port: int | None = None, autosave_interval: int = 1) -> None:
        self.dir = workdir
        # 1 s keeps what tests restart the broker over; benchmarks pass the shipped template's 60 s (with a
        # large backlog, saving every second rewrites it all and floods the disk every fsync then waits on)
        self.autosave_interval = autosave_interval
        workdir.mkdir(parents=True, exist_ok=True)
        self.tls = tls
        self.pki = pki or (Pki(workdir / "pki") if tls else None)
        self.port = port or free_port()
        self.officers = tuple(officers)
        self.ingests = tuple(ingests)
        self.max_packet_size = max_packet_size
        self.message_size_limit = message_size_limit
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._write_config()

    def _write_config(self) -> None:
        data = self.dir / "data"
        data.mkdir(exist_ok=True)
        lines = [
            "per_listener_settings false",
            f"user {getpass.getuser()}",  # as root, mosquitto would switch to "mosquitto" and lose its files
            "persistence true",
            f"persistence_location {data}/",
            f"autosave_interval {self.autosave_interval}",
            "max_queued_messages 1000000",  # as the shipped template (Mosquitto default 1000 drops bursts)
            "max_inflight_messages 64",
            f"log_dest file {self.log}",
            "log_type error", "log_type warning", "log_type notice", "log_type information",
            "connection_messages true",
        ]
        if self.max_packet_size:
            lines.append(f"max_packet_size {self.max_packet_size}")  # advertised in CONNACK
        if self.message_size_limit:  # not advertised: v5 publishers get PUBACK 0x95
            lines.append(f"message_size_limit {self.message_size_limit}")
        lines.append(f"listener {self.port} 127.0.0.1")
        if self.tls:
            assert self.pki is not None
            acl = self.dir / "acl"
            acl.write_text(render_acl(self.officers, self.ingests))  # the shipped ACL
            lines += [
                f"cafile {self.pki.ca}", f"certfile {self.pki.server.cert}", f"keyfile {self.pki.server.key}",
                "require_certificate true", "use_identity_as_username true", "allow_anonymous false",
                f"acl_file {acl}",
            ]
        else:
            lines.append("allow_anonymous true")
        self.conf.write_text("\n".join(lines) + "\n")

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    def mqtt_config(self, identity: str, client_id: str | None = None, **kw: object) -> MqttConfig:
        """Client settings for ``identity`` (its certificate CN) on this broker."""
        tls = None
        if self.tls:
            assert self.pki is not None
            cert = self.pki.client(identity)
            tls = TlsConfig(ca_file=cert.ca, cert_file=cert.cert, key_file=cert.key)
        args: dict[str, object] = {"broker": self.url, "client_id": client_id or identity, "tls": tls,
                                   "reconnect_min_s": 1.0, "reconnect_max_s": 2.0, **kw}
        return MqttConfig.model_validate(args)

    def client_args(self, identity: str) -> list[str]:
        """mosquitto_pub/sub arguments to reach this broker as ``identity``."""
        args = ["-h", "127.0.0.1", "-p", str(self.port), "-V", "mqttv5"]
        if self.tls:
            assert self.pki is not None
            c = self.pki.client(identity)
            args += ["--cafile", str(c.ca), "--cert", str(c.cert), "--key", str(c.key)]
        return args

    def start(self, timeout: float = 10.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"mosquitto exited ({self.proc.returncode}): {err}\n{self.log_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout} s")

    def stop(self) -> None:
        """Graceful stop (SIGTERM): mosquitto saves its persistent sessions and queues."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
