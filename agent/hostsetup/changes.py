"""What setting up the host did, one line per path or step: shared by ``install-system`` and ``provision``."""

from __future__ import annotations

from dataclasses import dataclass

# install-system plans in the present tense (create/update/skip) so a dry run can say "would create";
# provision reports what it did (created, installed, pending, ran ...). Both print through line().
_VERBS = {"create": "created", "update": "updated", "skip": "skipped"}
_DRY_VERBS = {"create": "would create", "update": "would update", "skip": "skipped"}
CHANGING = frozenset({"create", "update", "created", "updated", "installed", "ran"})


@dataclass(frozen=True)
class Change:
    """What happened (or, in a dry run, would happen) to one path or step."""

    action: str
    path: str  # a path under the root, or a step ("systemctl enable ...", "ownership for user ...")
    note: str = ""
    backup: str | None = None

    @property
    def changed(self) -> bool:
        return self.action in CHANGING

    def line(self, dry_run: bool = False) -> str:
        verb = (_DRY_VERBS if dry_run else _VERBS).get(self.action, self.action)
        extra = f"  (backup {self.backup})" if self.backup else ""
        extra += f"  ({self.note})" if self.note else ""
        return f"{verb:<10} {self.path}{extra}"
