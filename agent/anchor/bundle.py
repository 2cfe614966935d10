"""What the log contributes to verification and to an export bundle: leaves, checkpoints, receipts, proofs.

A vault (or a copy of it) has the whole ``log/`` folder. An export bundle holds a range of records, so it
carries the checkpoints, the receipts and, per exported record, an inclusion proof (``log/proofs.json``).
"""

from __future__ import annotations

import base64
import bisect
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.anchor.base import AnchorReceipt
from agent.anchor.log import LogFiles
from agent.anchor.merkle import HASH_LEN, LeafStore
from agent.signing.layout import bucket_of
from agent.signing.sources import ZipSource

PROOFS_MEMBER = "log/proofs.json"


@dataclass
class LogMaterial:
    """The log folder's contents (all optional: a bundle may carry proofs instead of every leaf)."""

    leaves: list[bytes] | None = None
    notes: dict[int, str] = field(default_factory=dict)
    receipts: list[AnchorReceipt] = field(default_factory=list)
    proofs: dict[int, dict[str, Any]] = field(default_factory=dict)  # seq -> {"tree_size", "proof": [b64]}
    partial: bool = False  # an export bundle: a seq range, so gaps outside it are not deletions
    items_dir: Path | None = None  # a live vault's items/, to tell "sealed while verifying" from "deleted"

    def sealed_since(self, seq: int) -> bool:
        """True when record ``seq`` exists on disk now (it was sealed after the verifier listed the records)."""
        if self.items_dir is None:
            return False
        return any((self.items_dir / bucket_of(seq)).glob(f"{seq:012d}.*.rec"))

    @classmethod
    def from_members(cls, read: dict[str, bytes]) -> LogMaterial:
        """From export-bundle members named like export_log_files() writes them."""
        mat = cls(partial=True)
        for name, data in read.items():
            if name.startswith("log/checkpoints/") and name.endswith(".note"):
                mat.notes[int(name.rsplit("/", 1)[1][:12])] = data.decode("utf-8")
            elif name.startswith("log/anchors/") and name.endswith(".json"):
                mat.receipts.append(AnchorReceipt.from_json(json.loads(data)))
            elif name == PROOFS_MEMBER:
                mat.proofs = {int(k): v for k, v in json.loads(data).items()}
        return mat

    @classmethod
    def from_dir(cls, log_dir: Path) -> LogMaterial:
        files = LogFiles(log_dir)
        leaves = None
        lf = files.dir / "leaves.bin"
        if lf.exists():
            data = lf.read_bytes()
            leaves = [data[i : i + HASH_LEN] for i in range(0, len(data) - len(data) % HASH_LEN, HASH_LEN)]
        return cls(leaves, files.checkpoint_notes(), files.receipts(), items_dir=Path(log_dir).parent / "items")


def material_of(source: Any) -> LogMaterial:
    """The log folder of a vault/copy, or the log/ members of an export bundle."""
    if isinstance(source, ZipSource):
        return LogMaterial.from_members(source.members("log/"))
    root = getattr(source, "root", None)
    if isinstance(root, Path) and (root / "log").is_dir():
        return LogMaterial.from_dir(root / "log")
    return LogMaterial()


def export_log_files(vault_dir: Path, seqs: Iterable[int]) -> dict[str, bytes]:
    """Bundle members that let an export verify offline: checkpoints, receipts and, per exported record,
    its inclusion proof in the smallest checkpoint that covers it (an anchored one when there is one)."""
    files = LogFiles(Path(vault_dir) / "log")
    out: dict[str, bytes] = {}
    notes = files.checkpoint_notes()
    for size, note in notes.items():
        out[f"log/checkpoints/{size:012d}.note"] = note.encode("utf-8")
    anchored = set()
    for r in files.receipts():
        out[f"log/anchors/{r.checkpoint_size:012d}-{r.anchor}.json"] = json.dumps(r.to_json(), sort_keys=True).encode()
        anchored.add(r.checkpoint_size)
    leaves_path = files.dir / "leaves.bin"
    if not notes or not leaves_path.exists():
        return out
    store = LeafStore(files.dir, readonly=True)  # the agent may be appending meanwhile
    try:
        sizes = sorted(s for s in notes if s <= store.size)
        good = sorted(anchored & set(sizes))
        proofs: dict[str, Any] = {}
        for seq in seqs:
            pick = [s for s in (good, sizes) if s and s[-1] > seq]
            if not pick:
                continue
            choice = pick[0][bisect.bisect_right(pick[0], seq)]
            proofs[str(seq)] = {"tree_size": choice, "proof": [base64.b64encode(h).decode()
                                                                for h in store.inclusion_proof(seq, choice)]}
        out[PROOFS_MEMBER] = json.dumps(proofs, sort_keys=True).encode()
    finally:
        store.close()
    return out
