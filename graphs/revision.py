"""The revision graph (`aidsafe revise`): a record made under old policies, under the new ones.

    START -+-- carried, nothing to ask ----------------------------------------------------> END
           +-- carried, policies to ask --> triage -+-- none applies ----------------------> END
           |                                        +-- some apply --+
           +-- revised (kept state) ---------------------------------+--> deliberator_1 -> ... -> refiner -> END
           +-- regenerated --> initializer -> initializer_seed ------+

The input is the record's kept state, prepared by the batch job (`batch/revise.py`): its intents,
the thoughts that cite only unchanged policies (renumbered), its response as the draft, round 0,
and the lineage that says what was superseded. The rounds and the refiner are the deliberation
graph's own nodes (`graphs.deliberation.add_rounds`), with the usual budget and consensus.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.graph import END, START
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Checkpointer

from aidsafe.graphs.deliberation import FIRST_TURN, add_initializer, add_rounds
from aidsafe.graphs.wiring import COMPLETE_OUTPUT, add_agent, as_provider, complete_output, graph_builder
from aidsafe.nodes import initializer, triage
from aidsafe.nodes.agent import agent_node
from aidsafe.nodes.llm import ModelProvider
from aidsafe.state.revision import RevisionInput, RevisionOutput, RevisionState

GRAPH_NAME = "aidsafe_revision"


def _entry(state: RevisionState) -> str:
    outcome = state["revision"]["outcome"]
    if outcome == "regenerated":
        return initializer.NAME
    if outcome == "revised":
        return FIRST_TURN
    return triage.NAME if state.get("triage_ids") else END


def _after_triage(state: RevisionState) -> str:
    if state.get("error"):
        return COMPLETE_OUTPUT
    return FIRST_TURN if state["revision"]["outcome"] == "revised" else END


def build_graph(
    n_deliberators: int = 2,
    *,
    model: BaseChatModel | ModelProvider | None = None,
    checkpointer: Checkpointer = None,
    name: str = GRAPH_NAME,
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Compile the revision graph; `model` as in `graphs.deliberation.build_graph`."""
    provider = as_provider(model)
    builder = graph_builder(RevisionState, RevisionInput, RevisionOutput)
    add_agent(builder, agent_node(triage.NAME, "judge", triage.triage, provider))
    add_initializer(builder, provider)
    add_rounds(builder, n_deliberators, provider)
    builder.add_node(COMPLETE_OUTPUT, complete_output(RevisionOutput))

    builder.add_conditional_edges(START, _entry, [triage.NAME, initializer.NAME, FIRST_TURN, END])
    builder.add_conditional_edges(triage.NAME, _after_triage, [FIRST_TURN, END, COMPLETE_OUTPUT])
    builder.add_edge(COMPLETE_OUTPUT, END)
    return builder.compile(checkpointer=checkpointer, name=name)


graph = build_graph()
