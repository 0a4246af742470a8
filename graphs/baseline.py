"""The zero-shot baseline (LLM_ZS) as a graph: one node, one call.

    START -> baseline -> END

Input and output are those of the deliberation graph (same record shape, `stop_reason`
"baseline"), so the batch engine, Studio and LangServe run it unchanged.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.graph import END, START
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Checkpointer

from aidsafe.graphs.wiring import COMPLETE_OUTPUT, add_agent, as_provider, complete_output, graph_builder, unless_error
from aidsafe.nodes import baseline
from aidsafe.nodes.agent import agent_node
from aidsafe.nodes.llm import ModelProvider
from aidsafe.state.deliberation import DeliberationInput, DeliberationOutput, DeliberationState

GRAPH_NAME = "aidsafe_baseline"


def build_graph(
    *,
    model: BaseChatModel | ModelProvider | None = None,
    checkpointer: Checkpointer = None,
    name: str = GRAPH_NAME,
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Compile the baseline graph; `model` as in `graphs.deliberation.build_graph`."""
    builder = graph_builder(DeliberationState, DeliberationInput, DeliberationOutput)
    add_agent(builder, agent_node(baseline.NAME, "generator", baseline.generate, as_provider(model)))
    builder.add_node(COMPLETE_OUTPUT, complete_output(DeliberationOutput))
    builder.add_edge(START, baseline.NAME)
    builder.add_conditional_edges(baseline.NAME, unless_error(END), [END, COMPLETE_OUTPUT])
    builder.add_edge(COMPLETE_OUTPUT, END)
    return builder.compile(checkpointer=checkpointer, name=name)


graph = build_graph()
"""No checkpointer: what `langgraph.json`, Studio and LangServe load."""
