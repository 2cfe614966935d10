"""The verifier's checks of Rekor v2 receipts across a whole vault: each receipt, the log's tree heads, consistency.

One ``RekorChecks`` per verification: it remembers every log tree head it verified, so two different trees
of one size (a forked log) are found across receipts, and checks each receipt's consistency proof from the
previous receipt's log checkpoint. Findings go to the caller's ``problem``/``warn`` functions.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from agent.anchor.base import AnchorReceipt
from agent.anchor.merkle import verify_consistency
from agent.anchor.note import Checkpoint, NoteVerifier, open_checkpoint
from agent.anchor.rekor import check_entry, checkpoint_signers
from agent.core.errors import VerificationError

Report = Callable[[str, str], None]


class RekorChecks:
    def __init__(self, device_key: ec.EllipticCurvePublicKey | None, log_keys: Sequence[NoteVerifier],
                 problem: Report, warn: Report) -> None:
        self.key = device_key
        self.log_keys = list(log_keys)
        self.problem = problem
        self.warn = warn
        self.heads: dict[tuple[str, int], bytes] = {}  # (origin, size) -> root of a verified log checkpoint
        self.seen: set[tuple[int, int]] = set()
        self.anchors: list[dict[str, Any]] = []  # one summary per (checkpoint size, log index)

    def _head(self, where: str, cp: Checkpoint) -> None:
        root = self.heads.setdefault((cp.origin, cp.size), cp.root)
        if root != cp.root:
            self.problem(where, f"Rekor log {cp.origin} signed two different tree heads for size {cp.size}: "
                                "the log forked")

    def check(self, where: str, rc: AnchorReceipt, note: str, size: int) -> None:
        """One receipt for the checkpoint ``note`` (tree size ``size`` of the device log)."""
        tle = rc.data.get("transparency_log_entry")
        names = checkpoint_signers(tle)
        keys = [k for k in self.log_keys if k.name in names]
        try:
            proof = check_entry(tle, note.encode(), self.key, keys)
        except VerificationError as exc:
            self.problem(where, f"Rekor receipt for checkpoint {size} invalid: {exc}")
            return
        if not proof.log_signed:
            self.warn(where, f"Rekor checkpoint of {', '.join(sorted(names)) or 'an unnamed log'} not checked: "
                             "no key for that log given (--rekor-key or --trust-root); the inclusion proof was "
                             "checked against the checkpoint it carries")
        else:
            self._head(where, proof.checkpoint)
            self._consistency(where, rc.data.get("consistency"), proof.checkpoint, keys)
        if (size, proof.log_index) not in self.seen:
            self.seen.add((size, proof.log_index))
            self.anchors.append({"anchor": "rekor", "checkpoint_size": size, "time": None,
                                 "log_origin": proof.checkpoint.origin, "log_index": proof.log_index,
                                 "log_size": proof.checkpoint.size, "log_signature_checked": proof.log_signed})

    def _consistency(self, where: str, c: Any, new: Checkpoint, keys: Sequence[NoteVerifier]) -> None:
        """A receipt's proof that the log grew from the previous receipt's checkpoint by appending only."""
        if c is None:
            return
        try:
            if not isinstance(c, dict) or not isinstance(c.get("proof"), list):
                raise VerificationError("consistency record malformed")
            if c.get("error"):
                raise VerificationError(f"the device found it inconsistent: {c['error']}")
            old = open_checkpoint(str(c.get("from_checkpoint")), keys, origin=new.origin)
            proof = [base64.b64decode(str(h), validate=True) for h in c["proof"]]
            verify_consistency(old.size, new.size, proof, old.root, new.root)
        except (VerificationError, binascii.Error) as exc:
            self.problem(where, f"Rekor log {new.origin} is not append-only up to size {new.size} (forked or "
                                f"rewritten): {exc}")
            return
        self._head(where, old)
