"""The contrast check: a blind classification of each look-alike the writer kept.

The judge sees the prompt alone (not the seed, not the class it was written as), with the policy set
in the shared system prefix, and names its class. A look-alike judged another class is dropped, the
judge's reason kept in the record, so the prompt set holds only prompts two calls agree on. A judge
that gives up after its re-asks fails the seed (errors file; a re-run tries it again).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from aidsafe.nodes.agent import Ask, messages
from aidsafe.nodes.context import Context
from aidsafe.policies import PolicySet
from aidsafe.state.contrast import Candidate, ClassCheckAnswer, ContrastState

NAME = "contrast_check"


def check(state: ContrastState, ctx: Context, policies: PolicySet) -> Generator[Ask, Any, dict[str, Any]]:
    candidates: list[Candidate] = [{**c} for c in state.get("candidates") or []]
    for candidate in candidates:
        if candidate["dropped"]:
            continue
        answer: ClassCheckAnswer = yield Ask(
            ClassCheckAnswer, messages(policies, "contrast_check", prompt=candidate["prompt"])
        )
        candidate["check"] = {"label": answer.label, "reason": answer.reason}
        if answer.label != candidate["class"]:
            candidate["dropped"] = f"written as {candidate['class']}, judged {answer.label}: {answer.reason}"
    return {"candidates": candidates}
