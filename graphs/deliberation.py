"""The AIDSAFE deliberation graph: initializer, N deliberators in turn, termination check, refiner.

    initializer -> initializer_seed -> deliberator_1 -> ... -> deliberator_N -> termination_check -+-> refiner -> END
                                             ^                                                     |
                                             +--------------------- next round --------------------+

Each deliberator is its own node so Studio and traces show every agent's turn. An agent that
gives up writes `error` and the sample ends there instead of raising, through `complete_output`,
which gives every output key that nothing wrote its empty value.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Checkpointer

from aidsafe.graphs.wiring import COMPLETE_OUTPUT, add_agent, as_provider, complete_output, graph_builder, unless_error
from aidsafe.nodes import initializer, refiner, termination
from aidsafe.nodes.agent import agent_node
from aidsafe.nodes.deliberator import deliberator, node_name
from aidsafe.nodes.llm import ModelProvider
from aidsafe.state.deliberation import DeliberationInput, DeliberationOutput, DeliberationState

GRAPH_NAME = "aidsafe_deliberation"
FIRST_TURN = node_name(1)
"""Where every round starts: the seed leads here, and so does a revised record's kept state."""


def _after_termination_check(state: DeliberationState) -> str:
    return refiner.NAME if state.get("stop_reason") else FIRST_TURN


def add_initializer(builder: StateGraph[Any, Any, Any, Any], provider: ModelProvider | None) -> None:
    """The intents and the seed nodes, the seed leading into the first round (`add_rounds`)."""
    add_agent(builder, agent_node(initializer.NAME, "initializer", initializer.decompose, provider))
    add_agent(builder, agent_node(initializer.SEED, "initializer", initializer.initialize, provider))
    builder.add_conditional_edges(initializer.NAME, unless_error(initializer.SEED), [initializer.SEED, COMPLETE_OUTPUT])
    builder.add_conditional_edges(initializer.SEED, unless_error(FIRST_TURN), [FIRST_TURN, COMPLETE_OUTPUT])


def add_rounds(builder: StateGraph[Any, Any, Any, Any], n_deliberators: int, provider: ModelProvider | None) -> None:
    """The rounds and the refiner: deliberators in turn, the termination check, then the refiner and
    END. Entered at `FIRST_TURN` with intents, thoughts, a response and `rounds`; an error goes to
    `COMPLETE_OUTPUT`, which the graph adds. The revision graph enters here with a record's kept state."""
    for index in range(1, n_deliberators + 1):
        logic = deliberator(index, n_deliberators)
        add_agent(builder, agent_node(node_name(index), "deliberator", logic, provider), agent_index=index)
    builder.add_node(termination.NAME, termination.termination_check, metadata={"agent_role": "termination"})
    add_agent(builder, agent_node(refiner.NAME, "refiner", refiner.refine, provider))
    for index in range(1, n_deliberators + 1):
        following = node_name(index + 1) if index < n_deliberators else termination.NAME
        builder.add_conditional_edges(node_name(index), unless_error(following), [following, COMPLETE_OUTPUT])
    builder.add_conditional_edges(termination.NAME, _after_termination_check, [refiner.NAME, FIRST_TURN])
    builder.add_conditional_edges(refiner.NAME, unless_error(END), [END, COMPLETE_OUTPUT])


def build_graph(
    n_deliberators: int = 2,
    *,
    model: BaseChatModel | ModelProvider | None = None,
    checkpointer: Checkpointer = None,
    name: str = GRAPH_NAME,
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Compile the deliberation graph with `n_deliberators` agents taking turns each round.

    `model` replaces the default `ChatOpenAI` client (any LangChain chat model, or a function of
    role and context); configuration otherwise comes from the run's context.
    """
    if n_deliberators < 1:
        raise ValueError("n_deliberators must be at least 1")
    provider = as_provider(model)
    builder = graph_builder(DeliberationState, DeliberationInput, DeliberationOutput)

    add_initializer(builder, provider)
    add_rounds(builder, n_deliberators, provider)
    builder.add_node(COMPLETE_OUTPUT, complete_output(DeliberationOutput))
    builder.add_edge(START, initializer.NAME)
    builder.add_edge(COMPLETE_OUTPUT, END)
    return builder.compile(checkpointer=checkpointer, name=name)


graph = build_graph()
"""Two deliberators, no checkpointer: what `langgraph.json`, Studio and LangServe load."""
