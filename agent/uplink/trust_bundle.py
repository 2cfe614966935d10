"""Device side of officer trust bundles: verify, install atomically, seal, report.

The officer trust folder (``uplink.commands.trust_dir``) becomes a symbolic link to one installed version
``.<name>.d/v<VERSION>/`` beside it (officer certificates, ``permissions.json``, ``crl.pem`` and the signed
bundle as ``trust-bundle.json``). A new version is written completely into its own folder first; the link is
then replaced by one ``rename``, so the command verifier sees the old set or the new one, never a mix, and a
crash leaves the old version in force. A version not newer than the installed one is never installed; an
expired or badly signed bundle is refused and the reason logged and shown in the device status.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from cryptography import x509

from agent.core.clock import Clock, iso_utc
from agent.core.fsutil import atomic_write, fsync_dir
from agent.core.vocab import TRUST_UPDATED
from agent.wire.commands import CRL_FILE, PERMISSIONS_FILE
from agent.wire.messages import Inbound
from agent.wire.trust_bundle import BundleRejected, TrustBundle, verify_bundle

log = logging.getLogger(__name__)

BUNDLE_FILE: Final = "trust-bundle.json"
TRUST_EVENT: Final = TRUST_UPDATED


class TrustBundleApplier:
    """Installs verified bundles into ``trust_dir``; ``on_message`` is the handler of the trust topic."""

    def __init__(self, trust_dir: Path, admin_cert: Path, clock: Clock, *,
                 seal: Callable[[dict[str, Any]], object] | None = None,
                 on_change: Callable[[], None] | None = None) -> None:
        self.trust_dir = Path(trust_dir)
        self.versions = self.trust_dir.parent / f".{self.trust_dir.name}.d"
        self.admin_cert_path = Path(admin_cert)
        self.clock = clock
        self.seal = seal
        self.on_change = on_change
        self.last_refusal: str | None = None
        self.refusals = 0
        self._lock = threading.Lock()
        self._retry: bytes | None = None  # refused only for the time: tried again with each status

    def _admin_cert(self) -> x509.Certificate:
        try:
            return x509.load_pem_x509_certificate(self.admin_cert_path.read_bytes())
        except (OSError, ValueError) as exc:
            raise BundleRejected("untrusted", f"the fleet-admin certificate {self.admin_cert_path} is "
                                              f"unreadable ({exc}): no bundle can be accepted") from None

    def installed(self) -> dict[str, Any] | None:
        """The body of the installed bundle, or None (a folder provisioned by hand)."""
        try:
            return dict(json.loads((self.trust_dir / BUNDLE_FILE).read_bytes())["body"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def version(self) -> int:
        body = self.installed()
        v = body.get("version") if body else 0
        return v if isinstance(v, int) else 0

    def status(self) -> dict[str, Any]:
        retry, self._retry = self._retry, None
        if retry is not None:  # a clock that was wrong at boot (no RTC) may be right now
            self.apply(retry)
        body = self.installed() or {}
        na = body.get("not_after_ms")
        return {"trust": {"version": self.version(), "admin": body.get("admin"),
                          "not_after": iso_utc(na * 1_000_000) if isinstance(na, int) else None,
                          "officers": sorted(body.get("officers") or {}), "refusals": self.refusals,
                          "last_refusal": self.last_refusal}}

    def on_message(self, msg: Inbound) -> None:
        """Trust-topic handler (runs on the link's worker thread, not in a paho callback)."""
        self.apply(msg.payload)

    def apply(self, payload: bytes) -> TrustBundle | None:
        """Verify and install; None when refused (logged) or already installed."""
        with self._lock:
            try:
                bundle = verify_bundle(payload, self._admin_cert(), self.clock.wall_ns() // 1_000_000)
                current = self.version()
                if bundle.version == current and payload == self._installed_payload():
                    return None  # the retained bundle again after a reconnect
                if bundle.version <= current:
                    raise BundleRejected("downgrade", f"version {bundle.version} is not newer than the "
                                                      f"installed version {current}")
            except BundleRejected as exc:
                if exc.code in ("not_yet_valid", "expired"):  # this device's clock may be what is wrong
                    self._retry = payload
                self.refusals += 1
                self.last_refusal = str(exc)
                log.warning("officer trust bundle refused: %s", exc)
                self._changed()
                return None
            previous = current
            try:
                self._install(bundle)
            except OSError as exc:  # e.g. trust_dir under the read-only /etc: the old version stays in force
                self.refusals += 1
                self.last_refusal = f"cannot install version {bundle.version} into {self.trust_dir}: {exc}"
                log.error("officer trust bundle not installed: %s", self.last_refusal)
                self._changed()
                return None
            self.last_refusal = None
        log.info("officer trust version %d installed (was %d): %d officer(s), CRL %s", bundle.version, previous,
                 len(bundle.officers), "included" if bundle.crl_pem else "none")
        if self.seal is not None:
            try:
                self.seal({"type": TRUST_EVENT, "version": bundle.version, "previous_version": previous,
                           "admin": bundle.admin, "officers": [o.officer_id for o in bundle.officers],
                           "crl": bundle.crl_pem is not None,
                           "bundle_sha256": hashlib.sha256(payload).hexdigest()})
            except Exception:
                log.exception("could not seal the officer trust change to version %d", bundle.version)
        self._changed()
        return bundle

    def _installed_payload(self) -> bytes | None:
        try:
            return (self.trust_dir / BUNDLE_FILE).read_bytes()
        except OSError:
            return None

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def _install(self, bundle: TrustBundle) -> None:
        self.versions.mkdir(mode=0o755, exist_ok=True)
        final = self.versions / f"v{bundle.version}"
        tmp = self.versions / f".v{bundle.version}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(mode=0o755)
        for grant in bundle.officers:
            atomic_write(tmp / f"{grant.officer_id}.pem", grant.cert_pem.encode())
        atomic_write(tmp / PERMISSIONS_FILE, json.dumps(bundle.permissions(), indent=1, sort_keys=True).encode())
        if bundle.crl_pem is not None:
            atomic_write(tmp / CRL_FILE, bundle.crl_pem.encode())
        atomic_write(tmp / BUNDLE_FILE, bundle.payload)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        fsync_dir(self.versions)
        if self.trust_dir.is_dir() and not self.trust_dir.is_symlink():
            # the folder provisioning made: kept aside (the verifier trusts nobody for this instant)
            os.replace(self.trust_dir, self.versions / "v0-provisioned")
        link = self.trust_dir.parent / f".{self.trust_dir.name}.link"
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(os.path.relpath(final, self.trust_dir.parent), link)
        os.replace(link, self.trust_dir)
        fsync_dir(self.trust_dir.parent)
        for old in self.versions.iterdir():  # older versions go; the provisioned folder stays for audit
            if old.name.startswith("v") and old.name[1:].isdigit() and int(old.name[1:]) < bundle.version:
                shutil.rmtree(old, ignore_errors=True)
