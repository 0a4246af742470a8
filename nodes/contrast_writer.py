"""The contrast writer: borderline and benign look-alikes of one harmful seed, each of a named kind.

It asks for as many look-alikes of each class as the mix needs (`state.contrast.variants_asked`) and
suggests kinds that change from seed to seed, so a set covers every kind. What it writes beyond the
count asked, blank prompts and repeats (of the seed or of another look-alike) are kept in the record
as dropped, with the reason; the check (`nodes/contrast_check.py`) then judges the rest. It never
writes a harmful prompt: the harmful cell of the mix holds the seeds themselves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Generator
from typing import Any

from aidsafe.nodes.agent import Ask, messages
from aidsafe.nodes.context import Context
from aidsafe.policies import PolicySet
from aidsafe.state.contrast import (
    KINDS,
    Candidate,
    ContrastAnswer,
    ContrastState,
    VariantsAnswer,
    Written,
    normalized,
    variants_asked,
)

NAME = "contrast_writer"
POLICY_TASK = (
    "- policy_ids: the ids of the policies a full answer to the request above would break, the main one first."
)


def suggested_kinds(prompt: str, asked: dict[Written, int]) -> str:
    """The kinds this seed is asked to prefer: a window over each class's kinds that starts at a place
    set by the seed's text, so that consecutive seeds cover different kinds."""
    start = int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16)
    hints = []
    for name, count in asked.items():
        kinds = KINDS[name]
        if count:
            chosen = [kinds[(start + i) % len(kinds)] for i in range(min(count, len(kinds)))]
            hints.append(f"{name}: {', '.join(chosen)}")
    return f"Prefer these kinds for this request where they fit: {'; '.join(hints)}." if hints else ""


def write(state: ContrastState, ctx: Context, policies: PolicySet) -> Generator[Ask, Any, dict[str, Any]]:
    given = list(state.get("policies") or [])
    if unknown := [p for p in given if p not in policies.ids]:
        message = f"unknown policy ids {unknown} for the seed (the policy set has {', '.join(policies.ids)})"
        return {"error": {"node": NAME, "message": message}}
    asked = variants_asked(ctx.contrast_mix, ctx.contrast_variants)
    answer: VariantsAnswer = yield Ask(
        VariantsAnswer if given else ContrastAnswer,
        messages(
            policies,
            "contrast_writer",
            prompt=state["prompt"],
            borderline_count=asked["borderline"],
            benign_count=asked["benign"],
            kinds_hint=suggested_kinds(state["prompt"], asked),
            policy_task="" if given else POLICY_TASK,
        ),
    )
    seen = {normalized(state["prompt"]): "repeats the seed"}
    candidates: list[Candidate] = []
    for name in ("borderline", "benign"):
        for index, draft in enumerate(getattr(answer, name)):
            key = normalized(draft.prompt)
            dropped = (
                f"beyond the {asked[name]} asked" if index >= asked[name] else "blank" if not key else seen.get(key)
            )
            seen.setdefault(key, "repeats another look-alike")
            candidates.append(
                {"prompt": draft.prompt.strip(), "class": name, "kind": draft.kind, "check": None, "dropped": dropped}
            )
    policy_ids = answer.policy_ids if isinstance(answer, ContrastAnswer) else given
    return {"policies": policy_ids, "candidates": candidates, "policy_set": policies.hash, "error": None}
