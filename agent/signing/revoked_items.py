"""``verify --crl``: items sealed by a revoked certificate from its revocation time on are not trusted.

A verify checker (agent.signing.verify's ``checkers``): for every item whose signing certificate a trusted
CRL lists, an item sealed at or after the revocation time (the earlier of the revocation and invalidity
dates) makes the evidence *not trusted* (exit 3, whatever ``--allow-untrusted`` says) and is named in the
``revocation`` section; items sealed before stay trusted. The sealing time is the device's own clock, which a
thief holding the key can set back: items before the revocation that no anchor proves existed before it are
named in a warning (``verify --tsa-ca``/``--ledger-key`` give that proof).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from agent.signing.revocation import Revocations, Revoked
from agent.signing.verify import CheckedItem, Checker, Context


def _sealed_at(item: CheckedItem) -> dt.datetime | None:
    for block in ("sealed", "captured"):
        try:
            return dt.datetime.fromtimestamp(int(item.record[block]["wall_us"]) / 1e6, dt.UTC)
        except (KeyError, TypeError, ValueError, OverflowError, OSError):
            continue
    return None


def _anchored_before(ctx: Context, seq: int, since: dt.datetime) -> bool:
    for c in (ctx.report.sections.get("anchoring") or {}).get("coverage") or []:
        if isinstance(c, dict) and c.get("seq_from", -1) <= seq <= c.get("seq_to", -1):
            when = c.get("existed_no_later_than")
            try:
                return when is not None and dt.datetime.fromisoformat(str(when).replace("Z", "+00:00")) < since
            except ValueError:
                return False
    return False


def revocation_checker(revocations: Revocations) -> Checker:
    """The checker for one set of trusted CRLs; runs after the anchor checker (it reads its coverage)."""

    def revocation_checker(ctx: Context) -> None:
        entries: dict[int, Revoked] = {}
        late: list[dict[str, Any]] = []
        unproven: list[int] = []
        looked_up: dict[bytes, Revoked | None] = {}  # by leaf DER: one lookup per distinct signer
        for item in ctx.items:
            der = item.signed.x5c[0] if item.signed.x5c else b""
            if der not in looked_up:
                try:
                    looked_up[der] = revocations.revoked(item.leaf)
                except (ValueError, IndexError):
                    looked_up[der] = None
            entry = looked_up[der]
            if entry is None:
                continue
            entries[entry.serial] = entry
            sealed = _sealed_at(item)
            if sealed is None or sealed >= entry.since:
                late.append({"seq": item.seq, "item": item.name,
                             "sealed": sealed.isoformat() if sealed else None, "serial": f"{entry.serial:X}"})
            elif not _anchored_before(ctx, item.seq, entry.since):
                unproven.append(item.seq)
        since = min((e.since for e in entries.values()), default=None)
        section: dict[str, Any] = {
            "crl_issuers": list(revocations.issuers),
            "revoked_signers": [{"serial": f"{e.serial:X}", "since": e.since.isoformat(), "reason": e.reason}
                                for e in entries.values()],
            "not_trusted": sorted(late, key=lambda x: int(x["seq"])),
            "trusted_before": since.isoformat() if since else None,
        }
        ctx.report.sections["revocation"] = section
        if late:
            ctx.report.trusted = False
            first = min(entries.values(), key=lambda e: e.since)
            ctx.report.warn(f"seq {late[0]['seq']}", f"{len(late)} item(s) sealed after the signer's "
                            f"{first.describe()}: not trusted")
        if unproven:
            ctx.report.warn(f"seq {unproven[0]}", f"{len(unproven)} item(s) of a revoked signer are dated before "
                            "the revocation only by the device's clock (no anchor proves they existed before it)")

    return revocation_checker
