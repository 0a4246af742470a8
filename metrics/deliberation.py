"""Deliberation statistics over generate records: how the agents got to their answers.

For the run summary, the evaluate report and the dataset card: stop reasons, rounds to consensus,
thoughts added per agent and round (mean per turn), the refiner's removals by reason, repairs by
rule (answers fixed instead of re-asked, `state/answers.py`), re-asks (model calls beyond one per
agent step: answers that could not be used and were asked again), agents that refused the task
(`refusals`), and refused final responses (the evaluation's keyword list).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from aidsafe.metrics.deterministic import is_refusal

INITIALIZER_CALLS = 2
"""Intents, then seed thoughts and the first response."""
REFINER_CALLS = 1


def expected_calls(record: Mapping[str, Any]) -> int:
    """Calls a sample makes when every answer parses: the baseline's one, or the deliberation's; for a
    record of `aidsafe revise` (whose usage is the revision's), its triage call and what it redid."""
    if record.get("stop_reason") == "baseline":
        return 1
    revision = record.get("revision") or {}
    triage = 1 if revision.get("triage") else 0
    if revision.get("outcome") == "carried":
        return triage
    initializer = 0 if revision.get("outcome") == "revised" else INITIALIZER_CALLS
    return triage + initializer + len(record.get("deliberation_log") or []) + REFINER_CALLS


@dataclass
class DeliberationStats:
    samples: int = 0
    stop_reasons: Counter[str] = field(default_factory=Counter)
    rounds_to_consensus: Counter[int] = field(default_factory=Counter)
    thoughts: defaultdict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    """agent -> round -> thoughts added."""
    turns: defaultdict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    """agent -> round -> turns taken (the initializer's seed counts as its turn in round 0)."""
    removals: Counter[str] = field(default_factory=Counter)
    repairs: Counter[str] = field(default_factory=Counter)
    """rule -> answers repaired by it."""
    reasks: int = 0
    samples_with_reasks: int = 0
    agent_refusals: int = 0
    """Agent answers that refused the task itself (left out of the thoughts)."""
    samples_with_agent_refusals: int = 0
    refused: int = 0
    """Final responses that are refusals."""
    safety_rated: int = 0
    safety_flagged: int = 0
    """Final responses the safety gate rated, and those it flagged (left out of the SFT export)."""
    thoughts_rated: int = 0
    thoughts_flagged: int = 0
    """Chains of thought the safety gate rated alone, and those it flagged (left out of the SFT export)."""
    revisions: Counter[str] = field(default_factory=Counter)
    """Records of `aidsafe revise` by outcome: carried, revised, regenerated."""

    def add(self, record: Mapping[str, Any]) -> None:
        """Count one generate record (other records are ignored)."""
        if "deliberation_log" not in record or "thoughts" not in record:
            return
        self.samples += 1
        self.stop_reasons[record["stop_reason"]] += 1
        if record["stop_reason"] == "consensus":
            self.rounds_to_consensus[record["rounds"]] += 1
        removed = record.get("removed_thoughts") or []
        every_thought = [*record["thoughts"], *(r["thought"] for r in removed)]
        seeds = [t for t in every_thought if t["round"] == 0]
        if seeds:
            self.thoughts[seeds[0]["agent"]][0] += len(seeds)
            self.turns[seeds[0]["agent"]][0] += 1
        for turn in record["deliberation_log"]:
            self.thoughts[turn["agent"]][turn["round"]] += len(turn["added_thoughts"])
            self.turns[turn["agent"]][turn["round"]] += 1
        self.removals.update(r["reason"] for r in removed)
        self.repairs.update(r["rule"] for r in record.get("repairs") or [])
        refusals = len(record.get("refusals") or [])
        self.agent_refusals += refusals
        self.samples_with_agent_refusals += refusals > 0
        extra = max(0, record["usage"]["llm_calls"] - expected_calls(record))
        self.reasks += extra
        self.samples_with_reasks += extra > 0
        self.refused += is_refusal(record["response"])
        if record.get("revision"):
            self.revisions[record["revision"]["outcome"]] += 1
        if record.get("safety"):
            self.safety_rated += 1
            self.safety_flagged += record["safety"]["flagged"]
            if "thoughts_flagged" in record["safety"]:
                self.thoughts_rated += 1
                self.thoughts_flagged += record["safety"]["thoughts_flagged"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "stop_reasons": dict(sorted(self.stop_reasons.items())),
            "rounds_to_consensus": {str(k): v for k, v in sorted(self.rounds_to_consensus.items())},
            "thoughts_added_per_turn": {
                agent: {str(r): round(count / self.turns[agent][r], 2) for r, count in sorted(rounds.items())}
                for agent, rounds in sorted(self.thoughts.items())
            },
            "removals": dict(self.removals.most_common()),
            "repairs": dict(self.repairs.most_common()),
            "reasks": self.reasks,
            "samples_with_reasks": self.samples_with_reasks,
            "agent_refusals": self.agent_refusals,
            "samples_with_agent_refusals": self.samples_with_agent_refusals,
            "refused": self.refused,
            "refusal_rate": round(self.refused / self.samples, 4) if self.samples else None,
            "safety_rated": self.safety_rated,
            "safety_flagged": self.safety_flagged,
            "thoughts_rated": self.thoughts_rated,
            "thoughts_flagged": self.thoughts_flagged,
            "revisions": {k: self.revisions[k] for k in ("carried", "revised", "regenerated") if self.revisions[k]},
        }

    def text(self) -> str:
        return stats_text(self.as_dict())


def stats_text(stats: Mapping[str, Any]) -> str:
    """Two lines of `DeliberationStats.as_dict()` for the printed run summary."""
    rounds = ", ".join(f"{k}: {v}" for k, v in stats["rounds_to_consensus"].items()) or "none reached it"
    stops = ", ".join(f"{k} {v}" for k, v in stats["stop_reasons"].items())
    removals = ", ".join(f"{k} {v}" for k, v in stats["removals"].items()) or "none"
    repairs = ", ".join(f"{k} {v}" for k, v in stats["repairs"].items()) or "none"
    thoughts = (
        f", {stats['thoughts_flagged']} of {stats['thoughts_rated']} chains of thought flagged"
        if stats.get("thoughts_rated")
        else ""
    )
    gate = (
        f"\nsafety gate: {stats['safety_flagged']} of {stats['safety_rated']} final responses flagged{thoughts} "
        "(left out of the SFT export)"
        if stats["safety_rated"]
        else ""
    )
    revisions = stats.get("revisions") or {}
    revised = "revision: " + ", ".join(f"{k} {v}" for k, v in revisions.items()) + "\n" if revisions else ""
    return revised + (
        f"stop reasons: {stops}; rounds to consensus (rounds: samples): {rounds}\n"
        f"refiner removals: {removals}; repairs: {repairs}\n"
        f"re-asks {stats['reasks']} (in {stats['samples_with_reasks']} samples); agents refusing the task "
        f"{stats['agent_refusals']} (in {stats['samples_with_agent_refusals']} samples); "
        f"refused responses {stats['refused']} of {stats['samples']}" + gate
    )


def file_stats(path: str | Path, ids: Collection[str]) -> dict[str, Any] | None:
    """`as_dict()` over the generate records of `path` whose id is in `ids` (what an evaluation
    read); other lines are skipped, the evaluation reports them. None without generate records."""
    from aidsafe.state.records import GenerateRecord

    stats = DeliberationStats()
    with Path(path).open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            try:
                record = GenerateRecord.model_validate_json(line)
            except ValidationError:
                continue
            if record.id in ids:
                stats.add(record.model_dump(mode="json"))
    return stats.as_dict() if stats.samples else None
