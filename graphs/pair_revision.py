"""The pair revision graph (`aidsafe revise-pairs`): preference pairs under new policies.

    START -+-- chosen side carried -------------------------------> END
           +-- chosen side revised --> preference (subgraph) -----> END

A pair whose chosen side (its `aidsafe generate` record) was carried by `aidsafe revise` is carried
too. One whose chosen side was revised or regenerated takes the revised thoughts and response as its
chosen side and runs the preference graph from there (`graphs/preference.py`: the chosen side is
scored, then the ear-whisperer loop makes a new rejected side under the new text).
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.graph import END, START
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Checkpointer

from aidsafe.graphs import preference
from aidsafe.graphs.wiring import as_provider, graph_builder
from aidsafe.nodes.llm import ModelProvider
from aidsafe.nodes.scorer import ViolationScorer
from aidsafe.state.revision import PairRevisionInput, PairRevisionOutput, PairRevisionState

GRAPH_NAME = "aidsafe_pair_revision"
PREFERENCE = "preference"


def _entry(state: PairRevisionState) -> str:
    return END if state["revision"]["outcome"] == "carried" else PREFERENCE


def build_graph(
    n_deliberators: int = 2,
    *,
    model: BaseChatModel | ModelProvider | None = None,
    scorer: ViolationScorer | None = None,
    checkpointer: Checkpointer = None,
    name: str = GRAPH_NAME,
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Compile the pair revision graph; `model` and `scorer` as in `graphs.preference.build_graph`."""
    builder = graph_builder(PairRevisionState, PairRevisionInput, PairRevisionOutput)
    pairs = preference.build_graph(n_deliberators, model=as_provider(model), scorer=scorer)
    builder.add_node(PREFERENCE, pairs, metadata={"agent_role": "preference"})
    builder.add_conditional_edges(START, _entry, [PREFERENCE, END])
    builder.add_edge(PREFERENCE, END)
    return builder.compile(checkpointer=checkpointer, name=name)
