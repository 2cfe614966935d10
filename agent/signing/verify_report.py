"""What a verification produces and what its checkers see: the report, the checked items, the context.

A ``Report`` collects problems (exit 1), warnings, and parts nobody vouched for (exit 3); checkers (anchors,
video, revocation, an inspection report) receive a ``Context`` and add sections to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from cryptography import x509

from agent.signing.records import SignedRecord

if TYPE_CHECKING:
    from agent.signing.sources import EvidenceSource

__all__ = ["CheckedItem", "Checker", "Context", "Report", "where"]


@dataclass(frozen=True)
class CheckedItem:
    """A record that parsed and whose signature held (only these enter the sequence checks).

    ``certs`` are its envelope's certificates, parsed once per run and shared by every item that carries them.
    """

    name: str
    folder: str
    signed: SignedRecord
    record: dict[str, Any]
    certs: tuple[x509.Certificate, ...] = ()

    @cached_property
    def seq(self) -> int:
        """Read once: the sequence checks, the sorts and every checker ask again and again."""
        return int(self.record["seq"])

    @property
    def leaf(self) -> x509.Certificate:
        """The signing certificate (parsed from the envelope when the item was made without ``certs``)."""
        return self.certs[0] if self.certs else self.signed.certificates()[0]


def where(item: CheckedItem) -> str:
    return f"seq {item.seq} ({item.name})"


@dataclass
class Report:
    path: str
    mode: str = "files"
    items: int = 0
    problems: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)
    device_id: str | None = None
    key_id: str | None = None
    trusted_ca: bool = False
    trusted: bool = False  # every record's chain leads to a CA the caller supplied
    untrusted: list[dict[str, str]] = field(default_factory=list)  # other parts nobody vouched for (a report)
    issuer: str | None = None  # subject of the CA the chains end at
    first_seq: int | None = None
    last_seq: int | None = None
    kinds: dict[str, int] = field(default_factory=dict)
    first_time: str | None = None
    last_time: str | None = None
    sections: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, where: str, what: str) -> None:
        self.problems.append({"item": where, "problem": what})

    def warn(self, where: str, what: str) -> None:
        self.warnings.append({"item": where, "warning": what})

    def distrust(self, where: str, why: str) -> None:
        """A part that is intact but that no trust anchor the caller gave vouches for (exit 3, not 1)."""
        self.untrusted.append({"item": where, "why": why})

    @property
    def fully_trusted(self) -> bool:
        """Every record's chain and every other signed part lead to an anchor the caller supplied."""
        return self.trusted and not self.untrusted

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "path": self.path, "mode": self.mode, "items": self.items,
                "device_id": self.device_id, "key_id": self.key_id, "trusted_ca": self.trusted_ca,
                "trusted": self.fully_trusted, "devices_trusted": self.trusted, "untrusted": self.untrusted,
                "issuer": self.issuer,
                "first_seq": self.first_seq, "last_seq": self.last_seq, "kinds": self.kinds,
                "first_time": self.first_time, "last_time": self.last_time,
                "problems": self.problems, "warnings": self.warnings, **self.sections}


@dataclass
class Context:
    """What checkers see: the source, every good item in sequence order, and the report to add to.

    In a bundle of several devices, a checker marked ``all_chains = True`` runs once over the whole bundle
    with ``chains`` (each device's good items, by device id) and no ``items``; the others run on each device."""

    source: EvidenceSource
    items: list[CheckedItem]
    report: Report
    chains: dict[str, list[CheckedItem]] | None = None


Checker = Callable[[Context], None]
