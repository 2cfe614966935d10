"""``evidence-officer console --config FILE``: a TOML file naming the broker, the officer's keys and the CAs.

Example::

    [broker]
    url = "mqtts://broker.customs.example:8883"
    ca_file = "/etc/evidence-officer/broker-ca.pem"
    cert_file = "/home/officer/.evidence-officer/tls.crt"
    key_file = "/home/officer/.evidence-officer/tls.key"

    [officer]
    keys = "/home/officer/.evidence-officer"
    device_ca = "/etc/evidence-officer/device-ca.pem"

    [listen]
    host = "127.0.0.1"            # loopback; any other address also needs the three keys below
    port = 8470
    # tls_cert = "console.pem"    # the console's own server certificate (and key)
    # tls_key = "console.key"
    # client_ca = "customs-ca.pem" # officer TLS certificates chain to it; only this console's officer gets in

    [inspections]
    data = "/var/lib/evidence-officer/console"      # sessions and reports
    evidence = "/var/lib/evidence-officer/received" # what `evidence-officer ingest --out` writes

    [index]
    url = "/var/lib/evidence-officer/index.sqlite"  # or "postgresql://console@db.customs.example/evidence"

    [report]
    tsa_url = "http://tsa.customs.example/tsr"      # RFC 3161 timestamp on the officer's PDF signature

    [live]
    width = 1280
    height = 720
    fps = 15
    seconds = 1500
"""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError

from agent.core.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BrokerSection(_Section):
    url: str = Field(description="mqtt://host:port or mqtts://host:port")
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    client_id: str | None = None


class OfficerSection(_Section):
    keys: Path = Field(description="officer key directory (evidence-officer keys init)")
    device_ca: Path | None = Field(default=None, description="CA certificate(s) devices must chain to")


class ListenSection(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8470, ge=0, le=65535)
    tls_cert: Path | None = Field(default=None, description="the console's HTTPS server certificate (PEM)")
    tls_key: Path | None = Field(default=None, description="its private key (PEM)")
    client_ca: Path | None = Field(default=None, description="CA of officer TLS client certificates (mutual TLS)")

    @property
    def loopback(self) -> bool:
        """Only this machine can reach the address (127.0.0.0/8, ::1, localhost)."""
        if self.host.lower() == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host.strip("[]")).is_loopback
        except ValueError:
            return False  # a host name: whatever it resolves to, it is not known to be loopback

    @property
    def mutual_tls(self) -> bool:
        return self.client_ca is not None


class LiveSection(_Section):
    width: int = Field(default=1280, ge=16, le=1920)
    height: int = Field(default=720, ge=16, le=1080)
    fps: float = Field(default=15.0, gt=0, le=30)
    seconds: float = Field(default=1500.0, gt=0, le=7200, description="an inspection lasts ~25 minutes")
    max_age_s: float = Field(default=15.0, gt=0, le=600,
                             description="refuse fragments captured longer ago than this (not live)")
    max_skew_s: float = Field(default=5.0, ge=0, le=600, description="tolerated device clock ahead of ours")


class InspectionsSection(_Section):
    data: Path = Field(default=Path("console-data"), description="inspection sessions and reports")
    evidence: Path | None = Field(default=None, description="the ingest output folder (evidence-officer ingest --out)")


class IndexSection(_Section):
    url: str | None = Field(default=None, min_length=1, max_length=2000,
                            description="the ingest's --index: a SQLite file or postgresql://... (read-only here)")

    @property
    def is_postgres(self) -> bool:
        return self.url is not None and self.url.startswith(("postgresql://", "postgres://"))


class ReportSection(_Section):
    tsa_url: HttpUrl | None = Field(default=None, description="RFC 3161 time-stamp authority (http/https) for the "
                                    "officer's PAdES signature on reports the console builds (as inspection report "
                                    "--tsa); unset: the signature is dated by this machine's clock only")

    @property
    def tsa(self) -> str | None:
        return None if self.tsa_url is None else str(self.tsa_url)


class ConsoleConfig(_Section):
    broker: BrokerSection
    officer: OfficerSection
    listen: ListenSection = Field(default_factory=ListenSection)
    live: LiveSection = Field(default_factory=LiveSection)
    inspections: InspectionsSection = Field(default_factory=InspectionsSection)
    index: IndexSection = Field(default_factory=IndexSection)
    report: ReportSection = Field(default_factory=ReportSection)


def check_listen(listen: ListenSection, source: str) -> None:
    """The console acts with the officer's keys, so any address but loopback needs the officer's TLS
    certificate (mutual TLS); ConfigError naming the key otherwise."""
    if (listen.tls_cert is None) != (listen.tls_key is None):
        raise ConfigError(f"{source}: listen.{'tls_key' if listen.tls_key is None else 'tls_cert'}: "
                          "listen.tls_cert and listen.tls_key go together")
    if listen.client_ca is not None and listen.tls_cert is None:
        raise ConfigError(f"{source}: listen.tls_cert: listen.client_ca needs HTTPS: set listen.tls_cert and "
                          "listen.tls_key (the console's own certificate)")
    if not listen.loopback and listen.client_ca is None:
        raise ConfigError(f"{source}: listen.client_ca: required because listen.host = {listen.host!r} is not "
                          "loopback: the console acts with the officer's keys, so it only leaves 127.0.0.1 with "
                          "mutual TLS (listen.tls_cert, listen.tls_key, and listen.client_ca = the CA of officer "
                          "certificates); see docs/console.md")


def load_console_config(path: Path) -> ConsoleConfig:
    """Parse and validate; ConfigError naming the file and the key for anything wrong."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        cfg = ConsoleConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "(top level)"
        raise ConfigError(f"{path}: {where}: {first.get('msg')}") from None
    base = path.parent
    check_listen(cfg.listen, str(path))
    return cfg.model_copy(update={
        "listen": cfg.listen.model_copy(update={k: _rel(base, getattr(cfg.listen, k))
                                                for k in ("tls_cert", "tls_key", "client_ca")}),
        "broker": cfg.broker.model_copy(update={k: _rel(base, getattr(cfg.broker, k))
                                                for k in ("ca_file", "cert_file", "key_file")}),
        "officer": cfg.officer.model_copy(update={"keys": _rel(base, cfg.officer.keys),
                                                  "device_ca": _rel(base, cfg.officer.device_ca)}),
        "inspections": cfg.inspections.model_copy(update={"data": _rel(base, cfg.inspections.data),
                                                          "evidence": _rel(base, cfg.inspections.evidence)}),
        "index": cfg.index if cfg.index.url is None or cfg.index.is_postgres else
        cfg.index.model_copy(update={"url": str(_rel(base, Path(cfg.index.url)))})})


def _rel(base: Path, p: Path | None) -> Path | None:
    """Relative paths in the file are relative to the file."""
    return None if p is None else (p if p.is_absolute() else base / p).expanduser()
