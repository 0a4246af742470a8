"""What changed between two policy sets, per policy and per clause: what `aidsafe revise` acts on.

Pure and fast (no model, no file). A clause is one `allows` or `forbids` item. Its id is a short
hash of its normalised text (case, spacing and punctuation ignored), so a clause keeps its id
wherever it moves in the list: inserting a clause marks that clause alone as new, never the ones
after it. Within one policy and one kind, clauses are matched like this:

1. same id (same normalised text): unchanged, whatever their positions;
2. of the rest, the most similar old/new pair first, while their similarity (stdlib
   `difflib.SequenceMatcher.ratio` on the normalised texts) is at least `SIMILAR`: the clause was
   edited, and reports as `changed` (old and new text), not as a removal plus an addition;
3. what is left: `removed` (old side) or `added` (new side).

A policy is matched by its `id`: `added`, `removed`, or kept, in which case a new `title` is a
`renamed` (the agents cite ids, so no thought rests on a title) and its clause changes are listed.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass, field
from typing import Literal

from aidsafe.policies.loader import Policy, PolicySet

SIMILAR = 0.6
"""The least `SequenceMatcher.ratio` at which an old and a new clause are one edited clause. 0.6 is
difflib's own "close match" cut-off (`get_close_matches`): "Instructions for weapons or explosives"
edited into "Instructions for weapons, explosives or poisons" scores 0.88; two unrelated clauses of
the bundled policies score 0.2-0.4."""

ClauseKind = Literal["allows", "forbids"]
ClauseStatus = Literal["added", "removed", "changed"]
PolicyStatus = Literal["added", "removed", "kept"]


def normalised(text: str) -> str:
    return re.sub(r"\W+", " ", text).strip().lower()


def clause_id(text: str) -> str:
    """A clause's stable id: 8 hex digits of the hash of its normalised text."""
    return hashlib.sha256(normalised(text).encode("utf-8")).hexdigest()[:8]


@dataclass(frozen=True)
class ClauseChange:
    policy_id: str
    kind: ClauseKind
    status: ClauseStatus
    old: str | None = None
    new: str | None = None

    @property
    def id(self) -> str:
        """The id of the clause as it is now (the old one's for a removal)."""
        return clause_id(self.new if self.new is not None else self.old or "")

    def describe(self) -> str:
        if self.status == "changed":
            return f"{self.policy_id}: {self.kind} clause changed: {self.old!r} -> {self.new!r}"
        text = self.new if self.status == "added" else self.old
        return f"{self.policy_id}: {self.kind} clause {self.status}: {text!r}"

    def as_dict(self) -> dict[str, str | None]:
        return {
            "policy_id": self.policy_id,
            "kind": self.kind,
            "status": self.status,
            "clause_id": self.id,
            "old": self.old,
            "new": self.new,
        }


@dataclass(frozen=True)
class PolicyChange:
    policy_id: str
    status: PolicyStatus
    old_title: str | None = None
    new_title: str | None = None
    clauses: tuple[ClauseChange, ...] = ()

    @property
    def renamed(self) -> bool:
        return self.status == "kept" and self.old_title != self.new_title

    @property
    def text_changed(self) -> bool:
        """Clauses a thought citing the policy may rest on were edited or removed."""
        return any(c.status in ("changed", "removed") for c in self.clauses)

    @property
    def widened(self) -> bool:
        """Only new clauses: what a thought citing it rested on is all still there."""
        return bool(self.clauses) and not self.text_changed


@dataclass(frozen=True)
class PolicyDiff:
    old_hash: str
    new_hash: str
    changes: tuple[PolicyChange, ...] = field(default_factory=tuple)

    @property
    def identical(self) -> bool:
        return self.old_hash == self.new_hash

    def _ids(self, wanted: str) -> frozenset[str]:
        return frozenset(
            c.policy_id
            for c in self.changes
            if (wanted == "removed" and c.status == "removed")
            or (wanted == "added" and c.status == "added")
            or (wanted == "text_changed" and c.status == "kept" and c.text_changed)
            or (wanted == "widened" and c.status == "kept" and c.widened)
        )

    @property
    def superseding(self) -> frozenset[str]:
        """Policies whose citing thoughts rest on text that is no longer there: removed, or with an
        edited or removed clause."""
        return self._ids("removed") | self._ids("text_changed")

    @property
    def to_triage(self) -> frozenset[str]:
        """Policies that may now apply to a prompt they did not apply to: added, widened, or edited."""
        return self._ids("added") | self._ids("widened") | self._ids("text_changed")

    def change(self, policy_id: str) -> PolicyChange | None:
        return next((c for c in self.changes if c.policy_id == policy_id), None)

    def reasons(self, policy_id: str) -> list[dict[str, str | None]]:
        """What changed in a superseding policy, clause by clause (for a record's lineage)."""
        change = self.change(policy_id)
        if change is None:
            return []
        if change.status == "removed":
            return [{"policy_id": policy_id, "kind": None, "status": "policy removed", "clause_id": None,
                     "old": change.old_title, "new": None}]  # fmt: skip
        return [c.as_dict() for c in change.clauses if c.status in ("changed", "removed")]

    def lines(self) -> list[str]:
        """The diff in words, one line per change; nothing but a title means nothing to redo."""
        out: list[str] = []
        for change in self.changes:
            if change.status == "added":
                out.append(f"+ policy {change.policy_id} added: {change.new_title!r}")
            elif change.status == "removed":
                out.append(f"- policy {change.policy_id} removed: {change.old_title!r}")
            else:
                if change.renamed:
                    out.append(f"~ policy {change.policy_id} title: {change.old_title!r} -> {change.new_title!r}")
                for clause in change.clauses:
                    mark = {"added": "+", "removed": "-", "changed": "~"}[clause.status]
                    out.append(f"{mark} {clause.describe()} [clause {clause.id}]")
        return out


def _match_clauses(policy_id: str, kind: ClauseKind, old: list[str], new: list[str]) -> list[ClauseChange]:
    old_ids, new_ids = [clause_id(t) for t in old], [clause_id(t) for t in new]
    rest_old = [t for t, i in zip(old, old_ids, strict=True) if i not in new_ids]
    rest_new = [t for t, i in zip(new, new_ids, strict=True) if i not in old_ids]
    pairs = sorted(
        (
            (difflib.SequenceMatcher(None, normalised(a), normalised(b)).ratio(), i, j)
            for i, a in enumerate(rest_old)
            for j, b in enumerate(rest_new)
        ),
        reverse=True,
    )
    used_old: set[int] = set()
    used_new: set[int] = set()
    changes: list[ClauseChange] = []
    for ratio, i, j in pairs:
        if ratio < SIMILAR:
            break
        if i in used_old or j in used_new:
            continue
        used_old.add(i)
        used_new.add(j)
        changes.append(ClauseChange(policy_id, kind, "changed", rest_old[i], rest_new[j]))
    changes += [ClauseChange(policy_id, kind, "removed", old=t) for i, t in enumerate(rest_old) if i not in used_old]
    changes += [ClauseChange(policy_id, kind, "added", new=t) for j, t in enumerate(rest_new) if j not in used_new]
    return changes


def _policy_change(old: Policy, new: Policy) -> PolicyChange:
    clauses = [
        *_match_clauses(old.id, "allows", old.allows, new.allows),
        *_match_clauses(old.id, "forbids", old.forbids, new.forbids),
    ]
    return PolicyChange(old.id, "kept", old.title, new.title, tuple(clauses))


def diff_policies(old: PolicySet, new: PolicySet) -> PolicyDiff:
    """Every change from `old` to `new`, in the new set's order (removed policies last)."""
    before = {p.id: p for p in old.policies}
    after = {p.id: p for p in new.policies}
    changes: list[PolicyChange] = []
    for policy in new.policies:
        if policy.id not in before:
            changes.append(PolicyChange(policy.id, "added", new_title=policy.title))
            continue
        change = _policy_change(before[policy.id], policy)
        if change.clauses or change.renamed:
            changes.append(change)
    changes += [PolicyChange(p.id, "removed", old_title=p.title) for p in old.policies if p.id not in after]
    return PolicyDiff(old.hash, new.hash, tuple(changes))
