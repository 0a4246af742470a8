"""Triage (`aidsafe revise`): one short call on whether new, widened or edited policies apply to a
prompt whose record never cited them. It sees the request and its intents, not the reasoning, and
answers with policy ids only, so it costs a fraction of a deliberator's turn. Where none applies
the record is carried over; otherwise it deliberates again under the new text.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from aidsafe.nodes.agent import Ask, intent_values, messages
from aidsafe.nodes.context import Context
from aidsafe.policies import PolicySet
from aidsafe.state.answers import TriageAnswer
from aidsafe.state.revision import Lineage, RevisionState

NAME = "triage"


def triage(state: RevisionState, ctx: Context, policies: PolicySet) -> Generator[Ask, Any, dict[str, Any]]:
    asked = list(state.get("triage_ids") or [])
    answer: TriageAnswer = yield Ask(
        TriageAnswer,
        messages(
            policies,
            "triage",
            context=("request", "intents"),
            prompt=state["prompt"],
            policy_ids=", ".join(asked),
            **intent_values(state["intents"]),
        ),
    )
    applies = [policy_id for policy_id in answer.applies if policy_id in asked]
    lineage: Lineage = {**state["revision"], "triage": {"asked": asked, "applies": applies}}
    if applies:
        lineage["outcome"] = "revised"
        lineage["checked"] += f"; triage: {', '.join(applies)} now apply, so it deliberated again"
    else:
        lineage["checked"] += "; triage: none of them applies, so it was carried over"
    return {"revision": lineage}
