"""Anchoring checks for the verifier: inclusion, checkpoint signatures, consistency, TSA and ledger receipts.

Plugs into agent.signing.verify as a checker (``anchor_checker(trust)``). Names every finding: an item deleted after
a checkpoint covered it, a truncated log tail, records altered after logging, forked or inconsistent
checkpoints, bad TSA tokens or ledger receipts, and capture times that contradict an anchor time (later
than the time that proves the item existed, or back-dated before a TSA time logged ahead of it).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from agent.anchor.base import AnchorReceipt
from agent.anchor.bundle import LogMaterial, material_of
from agent.anchor.ledger import check_receipt
from agent.anchor.merkle import leaf_hash, node_hash, verify_consistency, verify_inclusion
from agent.anchor.note import Checkpoint, NoteVerifier, ecdsa_verifier, open_note, parse_checkpoint, parse_note
from agent.core.clock import iso_utc
from agent.core.errors import VerificationError

if TYPE_CHECKING:
    from agent.anchor.rekor_check import RekorChecks
    from agent.signing.verify import Checker, Context


@dataclass(frozen=True)
class AnchorTrust:
    """What the verifier trusts beyond the device certificate."""

    tsa_roots: Sequence[x509.Certificate] = ()
    ledger_keys: Sequence[NoteVerifier] = ()
    clock_tolerance_s: float = 5.0
    backdate_tolerance_s: float = 900.0
    witness_notes: Sequence[str] = ()  # e.g. the newest checkpoint fetched from the ledger


class LogItem(NamedTuple):
    """One record as the anchoring checks see it (a tuple: one is made per record)."""

    seq: int
    kind: str
    body: bytes  # the exact signed record bytes
    record: dict[str, Any]


@dataclass
class AnchorResult:
    problems: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    checkpoints: dict[int, Checkpoint] = field(default_factory=dict)
    anchors: list[dict[str, Any]] = field(default_factory=list)
    coverage: list[dict[str, Any]] = field(default_factory=list)
    not_later_than: dict[int, tuple[int, str]] = field(default_factory=dict)  # seq -> (time ns, "tsa@size")

    def problem(self, where: str, what: str) -> None:
        self.problems.append((where, what))

    def warn(self, where: str, what: str) -> None:
        self.warnings.append((where, what))

    def summary(self) -> dict[str, Any]:
        return {"checkpoints": sorted(self.checkpoints), "anchors": self.anchors, "coverage": self.coverage}


def _capture_ns(record: dict[str, Any]) -> tuple[int, int] | None:
    """(start, end) capture wall time in ns from a sealed record, or None if it has none."""
    try:
        start = int(record["captured"]["wall_us"]) * 1000
    except (KeyError, TypeError, ValueError):
        return None
    try:
        end = int(record["end"]["wall_us"]) * 1000
    except (KeyError, TypeError, ValueError):
        end = start
    return start, max(start, end)


def _b64(v: Any) -> bytes:
    return base64.b64decode(str(v), validate=True)


class _Checker:
    def __init__(self, items: Sequence[LogItem], mat: LogMaterial, device_key: ec.EllipticCurvePublicKey | None,
                 trust: AnchorTrust) -> None:
        self.by_seq = {it.seq: it for it in items}
        self.mat = mat
        self.key = device_key
        self.trust = trust
        self.r = AnchorResult()
        self.notes: dict[str, str] = {}  # note sha256 hex -> note text (verified)
        self.anchor_time: dict[int, tuple[int, str]] = {}  # checkpoint size -> earliest verified anchor
        self._rekor: RekorChecks | None = None  # made at the first Rekor receipt (sigstore loads in ~0.1 s)

    @property
    def rekor(self) -> RekorChecks:
        if self._rekor is None:
            from agent.anchor.rekor_check import RekorChecks

            self._rekor = RekorChecks(self.key, self.trust.ledger_keys, self.r.problem, self.r.warn)
        return self._rekor

    # --- checkpoints -----------------------------------------------------------------------------------
    def _add_note(self, note: str, where: str) -> None:
        try:
            parsed = parse_note(note)
            cp = parse_checkpoint(parsed.text)
            if self.key is None:
                raise VerificationError("no device key to check it with")
            open_note(note, [ecdsa_verifier(cp.origin, self.key)])
        except VerificationError as exc:
            self.r.problem(where, f"checkpoint signature/format invalid: {exc}")
            return
        known = self.r.checkpoints.get(cp.size)
        if known is not None and known.root != cp.root:
            self.r.problem(where, f"two different signed checkpoints for tree size {cp.size}: the log was forked "
                                  "or rewritten")
            return
        self.r.checkpoints[cp.size] = cp
        self.notes[hashlib.sha256(note.encode()).hexdigest()] = note

    def collect_checkpoints(self) -> None:
        for size, note in sorted(self.mat.notes.items()):
            self._add_note(note, f"log/checkpoints/{size:012d}.note")
        for it in self.by_seq.values():
            if it.kind == "checkpoint":
                extra = it.record.get("extra") or {}
                cnote = extra.get("note")
                if not isinstance(cnote, str):
                    self.r.problem(f"seq {it.seq}", "checkpoint record carries no signed note")
                    continue
                self._add_note(cnote, f"seq {it.seq}")
                cp = self.r.checkpoints.get(int(extra.get("tree_size", -1)))
                if cp is None or base64.b64encode(cp.root).decode() != extra.get("root"):
                    self.r.problem(f"seq {it.seq}", "checkpoint record's size/root differ from its signed note")
                if it.seq < int(extra.get("tree_size", 0)):
                    self.r.problem(f"seq {it.seq}", "checkpoint record claims to cover itself")
            elif it.kind == "receipt":
                rnote = (it.record.get("extra") or {}).get("note")
                if isinstance(rnote, str):
                    self._add_note(rnote, f"seq {it.seq}")
        for i, note in enumerate(self.trust.witness_notes):
            self._add_note(note, f"witness checkpoint {i}")

    # --- leaves, deletion, truncation, roots -------------------------------------------------------------
    def check_log(self) -> None:
        cps = self.r.checkpoints
        end = max(self.by_seq) + 1 if self.by_seq else 0
        top = max(cps) if cps else 0
        leaves_file = self.mat.leaves
        sizes = sorted(cps)

        def covering(seq: int) -> str:
            s = sizes[bisect.bisect_right(sizes, seq)]
            when = self.anchor_time.get(s)
            return f"checkpoint of size {s}" + (f", anchored by {when[1]} at {iso_utc(when[0])}" if when else "")

        if self.mat.partial:
            self._check_proofs()
            return
        if max(top, len(leaves_file or ())) > end and self.mat.sealed_since(end):
            self.r.warn(f"seq {end}", "records were sealed while verifying; the newest are not checked")
            top = min(top, end)
            leaves_file = None if leaves_file is None else leaves_file[:end]
        if top > end:
            self.r.problem(f"seq {end}..{top - 1}", f"log tail truncated: {covering(end)} covers seq 0..{top - 1} "
                                                    f"but the evidence ends at seq {end - 1}")
        if leaves_file is not None and len(leaves_file) > max(end, top):
            self.r.problem(f"seq {max(end, top)}..{len(leaves_file) - 1}",
                           f"log tail truncated: the Merkle log holds {len(leaves_file)} leaves but the evidence "
                           f"ends at seq {end - 1} (records deleted after they were logged)")
        for seq in range(min(top, end)):
            if seq not in self.by_seq:
                self.r.problem(f"seq {seq}", f"item deleted after it was logged: {covering(seq)} includes it")
        # recompute every checkpoint root from the records (logged leaf where a record is gone)
        stack: list[tuple[int, bytes]] = []
        want = iter(sizes)
        nxt = next(want, None)
        altered: list[int] = []
        for seq in range(top):
            it = self.by_seq.get(seq)
            if it is not None:
                h = leaf_hash(it.body)
                if leaves_file is not None and seq < len(leaves_file) and leaves_file[seq] != h:
                    altered.append(seq)
            elif leaves_file is not None and seq < len(leaves_file):
                h = leaves_file[seq]
            else:
                self.r.warn(f"seq {seq}", "roots of later checkpoints cannot be recomputed (record and leaf gone)")
                return
            size, cur = 1, h
            while stack and stack[-1][0] == size:
                cur = node_hash(stack.pop()[1], cur)
                size *= 2
            stack.append((size, cur))
            while nxt is not None and nxt == seq + 1:
                root = stack[-1][1]
                for _, left in reversed(stack[:-1]):
                    root = node_hash(left, root)
                if root != cps[nxt].root:
                    self.r.problem(f"checkpoint {nxt}", "records do not hash to the signed root: records altered, "
                                                        "inserted or reordered after logging"
                                   + (f" (seq {', '.join(map(str, altered[:10]))} differ from the log)"
                                      if altered else ""))
                nxt = next(want, None)
        for seq in altered:
            self.r.problem(f"seq {seq}", "record differs from the one entered in the Merkle log (altered)")

    def _check_proofs(self) -> None:
        top = max(self.r.checkpoints) if self.r.checkpoints else 0
        for seq, it in sorted(self.by_seq.items()):
            p = self.mat.proofs.get(seq)
            if p is None:
                if seq < top:
                    self.r.warn(f"seq {seq}", "no inclusion proof in the bundle (re-export with the log)")
                continue
            cp = self.r.checkpoints.get(int(p.get("tree_size", -1)))
            if cp is None:
                self.r.problem(f"seq {seq}", "inclusion proof refers to an unknown checkpoint")
                continue
            try:
                verify_inclusion(leaf_hash(it.body), seq, cp.size, [_b64(h) for h in p.get("proof", [])], cp.root)
            except (VerificationError, binascii.Error) as exc:
                self.r.problem(f"seq {seq}", f"not included in checkpoint {cp.size}: {exc}")

    def check_consistency(self) -> None:
        for it in sorted(self.by_seq.values(), key=lambda i: i.seq):
            extra = it.record.get("extra") or {}
            cons = extra.get("consistency") if it.kind == "checkpoint" else None
            if not cons:
                continue
            a, b = self.r.checkpoints.get(int(cons.get("from_size", -1))), self.r.checkpoints.get(
                int(extra.get("tree_size", -1)))
            if a is None or b is None:
                continue
            try:
                verify_consistency(a.size, b.size, [_b64(h) for h in cons.get("proof", [])], a.root, b.root)
            except (VerificationError, binascii.Error) as exc:
                self.r.problem(f"seq {it.seq}", f"checkpoint {b.size} is not an extension of {a.size}: {exc}")

    # --- anchors -----------------------------------------------------------------------------------------
    def check_anchors(self) -> dict[int, int]:
        """Verify receipts; returns receipt-record seq -> verified TSA time (for the back-dating check)."""
        seen: dict[tuple[str, int], int] = {}
        receipt_times: dict[int, int] = {}
        entries: list[tuple[str, AnchorReceipt, int | None]] = [
            (f"log/anchors/{r.checkpoint_size:012d}-{r.anchor}.json", r, None) for r in self.mat.receipts]
        for it in self.by_seq.values():
            if it.kind == "receipt":
                try:
                    entries.append((f"seq {it.seq}", AnchorReceipt.from_json(it.record.get("extra") or {}), it.seq))
                except (KeyError, TypeError, ValueError):
                    self.r.problem(f"seq {it.seq}", "receipt record is malformed")
        for where, rc, rseq in entries:
            t = self._check_receipt(where, rc)
            if t is None:
                continue
            if rseq is not None and rc.anchor == "tsa":
                receipt_times[rseq] = t
            key = (rc.anchor, rc.checkpoint_size)
            if key not in seen:
                seen[key] = t
                self.r.anchors.append({"anchor": rc.anchor, "checkpoint_size": rc.checkpoint_size,
                                       "time": iso_utc(t)})
            best = self.anchor_time.get(rc.checkpoint_size)
            if best is None or t < best[0]:
                self.anchor_time[rc.checkpoint_size] = (t, f"{rc.anchor}@{rc.checkpoint_size}")
        return receipt_times

    def _check_receipt(self, where: str, rc: AnchorReceipt) -> int | None:
        note = self.notes.get(rc.note_sha256)
        if note is None:
            self.r.problem(where, f"{rc.anchor} receipt is for a checkpoint note that is not in the evidence")
            return None
        cp = parse_checkpoint(parse_note(note).text)
        if cp.size != rc.checkpoint_size:
            self.r.problem(where, f"{rc.anchor} receipt names tree size {rc.checkpoint_size}, its note {cp.size}")
            return None
        if rc.anchor == "tsa":
            if not self.trust.tsa_roots:
                self.r.warn(where, "TSA token not checked: no trusted TSA root given")
                return None
            try:
                from agent.anchor.tsa import verify_token  # rfc3161-client loads in ~15 ms

                tok = verify_token(_b64(rc.data.get("token")), note.encode(), self.trust.tsa_roots)
            except (VerificationError, binascii.Error) as exc:
                self.r.problem(where, f"TSA token for checkpoint {cp.size} invalid: {exc}")
                return None
            return int(tok.gen_time.timestamp() * 1e6) * 1000
        if rc.anchor == "ledger":
            try:
                when = check_receipt(rc.data.get("receipt"), "sha256", bytes.fromhex(rc.note_sha256),
                                     self.trust.ledger_keys)
            except VerificationError as exc:
                self.r.problem(where, f"ledger receipt for checkpoint {cp.size} invalid: {exc}")
                return None
            if not self.trust.ledger_keys:
                self.r.warn(where, "ledger inclusion proof not checked: no ledger key given")
            return int(when.timestamp() * 1e6) * 1000
        if rc.anchor == "rekor":
            self.rekor.check(where, rc, note, cp.size)
            return None  # Rekor v2 vouches for no time: the TSA dates the note
        self.r.warn(where, f"unknown anchor type {rc.anchor!r} not checked")
        return None

    # --- times -------------------------------------------------------------------------------------------
    def check_times(self, receipt_times: dict[int, int]) -> None:
        sizes = sorted(self.anchor_time)
        suffix: list[tuple[int, str]] = []
        best: tuple[int, str] | None = None
        for s in reversed(sizes):
            t = self.anchor_time[s]
            best = t if best is None or t[0] <= best[0] else best  # ties: the smaller checkpoint
            suffix.append(best)
        suffix.reverse()
        tol = int(self.trust.clock_tolerance_s * 1e9)
        back = int(self.trust.backdate_tolerance_s * 1e9)
        floor: tuple[int, int] | None = None  # (TSA time, receipt seq) of the latest receipt logged so far
        run: dict[str, Any] | None = None
        for seq in sorted(self.by_seq):
            it = self.by_seq[seq]
            i = bisect.bisect_right(sizes, seq)
            nlt = suffix[i] if i < len(suffix) else None
            cap = _capture_ns(it.record)
            if nlt is not None:
                self.r.not_later_than[seq] = nlt
                if cap is not None and cap[1] > nlt[0] + tol:
                    self.r.problem(f"seq {seq}", f"capture time {iso_utc(cap[1])} is later than {iso_utc(nlt[0])}, "
                                                 f"when {nlt[1]} proves the item already existed (clock wrong or "
                                                 "record forged)")
            if cap is not None and floor is not None and cap[0] < floor[0] - back and it.kind != "receipt":
                self.r.problem(f"seq {seq}", f"capture time {iso_utc(cap[0])} back-dated: it was logged after "
                                             f"receipt seq {floor[1]}, whose TSA time is {iso_utc(floor[0])}")
            if seq in receipt_times and (floor is None or receipt_times[seq] > floor[0]):
                floor = (receipt_times[seq], seq)
            key = None if nlt is None else nlt[1]
            if run is not None and run["anchor"] == key and run["seq_to"] == seq - 1:
                run["seq_to"] = seq
            else:
                run = {"seq_from": seq, "seq_to": seq, "anchor": key,
                       "existed_no_later_than": None if nlt is None else iso_utc(nlt[0])}
                self.r.coverage.append(run)
        unanchored = [c for c in self.r.coverage if c["anchor"] is None]
        if unanchored:
            c = unanchored[-1]
            self.r.warn(f"seq {c['seq_from']}..{c['seq_to']}", "not yet covered by an anchored checkpoint "
                                                               "(normal for the newest items)")

    def run(self) -> AnchorResult:
        self.collect_checkpoints()
        receipt_times = self.check_anchors()
        if self._rekor is not None:
            self.r.anchors.extend(self._rekor.anchors)
        self.check_log()
        self.check_consistency()
        self.check_times(receipt_times)
        return self.r


def check_anchoring(items: Sequence[LogItem], material: LogMaterial,
                    device_key: ec.EllipticCurvePublicKey | None, trust: AnchorTrust = AnchorTrust()) -> AnchorResult:
    """All anchoring checks over records in any order; never raises for bad evidence."""
    return _Checker(items, material, device_key, trust).run()


def existed_no_later_than(result: AnchorResult, seq: int) -> tuple[dt.datetime, str] | None:
    v = result.not_later_than.get(seq)
    return None if v is None else (dt.datetime.fromtimestamp(v[0] / 1e9, dt.UTC), v[1])


# --- glue to agent.signing.verify --------------------------------------------------------------------------------
def anchor_checker(trust: AnchorTrust = AnchorTrust()) -> Checker:
    """A checker for ``agent.signing.verify.check(path, checkers=[anchor_checker(trust)])``."""

    def check(ctx: Context) -> None:
        if ctx.source.mode == "single" or not ctx.items:
            return
        items = [LogItem(i.seq, str(i.record.get("kind")), i.signed.body, i.record) for i in ctx.items]
        key = ctx.items[0].leaf.public_key()
        result = check_anchoring(items, material_of(ctx.source), key if isinstance(key, ec.EllipticCurvePublicKey)
                                 else None, trust)
        for where, what in result.problems:
            ctx.report.problem(where, what)
        for where, what in result.warnings:
            ctx.report.warn(where, what)
        ctx.report.sections["anchoring"] = result.summary()

    return check
