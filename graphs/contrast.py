"""Contrast prompts as a graph: one harmful seed in, its borderline and benign look-alikes out.

    START -> contrast_writer -> contrast_check -> END
                  |                   |
                  +---- error --------+--> complete_output -> END

The writer (role `generator`) writes look-alikes of named kinds and, when the seed comes without
them, the seed's policies; the check (role `judge`) classifies each look-alike blind and drops those
it puts in another class. Which of them fill the mix is decided over the whole batch
(`batch/contrast.py`), not here.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.graph import END, START
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Checkpointer

from aidsafe.graphs.wiring import COMPLETE_OUTPUT, add_agent, as_provider, complete_output, graph_builder, unless_error
from aidsafe.nodes import contrast_check, contrast_writer
from aidsafe.nodes.agent import agent_node
from aidsafe.nodes.llm import ModelProvider
from aidsafe.state.contrast import ContrastInput, ContrastOutput, ContrastState

GRAPH_NAME = "aidsafe_contrast"


def build_graph(
    *,
    model: BaseChatModel | ModelProvider | None = None,
    checkpointer: Checkpointer = None,
    name: str = GRAPH_NAME,
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Compile the contrast graph; `model` as in `graphs.deliberation.build_graph`."""
    provider = as_provider(model)
    builder = graph_builder(ContrastState, ContrastInput, ContrastOutput)
    add_agent(builder, agent_node(contrast_writer.NAME, "generator", contrast_writer.write, provider))
    add_agent(builder, agent_node(contrast_check.NAME, "judge", contrast_check.check, provider))
    builder.add_node(COMPLETE_OUTPUT, complete_output(ContrastOutput))
    builder.add_edge(START, contrast_writer.NAME)
    builder.add_conditional_edges(
        contrast_writer.NAME, unless_error(contrast_check.NAME), [contrast_check.NAME, COMPLETE_OUTPUT]
    )
    builder.add_conditional_edges(contrast_check.NAME, unless_error(END), [END, COMPLETE_OUTPUT])
    builder.add_edge(COMPLETE_OUTPUT, END)
    return builder.compile(checkpointer=checkpointer, name=name)


graph = build_graph()
"""No checkpointer: what `langgraph.json`, Studio and LangServe load."""
