"""The preference graph: a chosen sample, then the ear-whisperer loop for the rejected one.

    START -+-> deliberation (subgraph) -+-> score_chosen -> ear_whisperer -> whispered_generator
           +-- chosen given in input ---+                        ^                  |
                                                                 |            score_rejected
                                                                 |                  |
                                                                 +-- next try -- keep_best -> END

The chosen sample is the deliberation graph's refined output, or the `chosen` the caller passes
(e.g. from an `aidsafe generate` record) so that nothing is generated twice. Any node that gives
up writes `error` and the sample ends there.
"""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langgraph.graph import END, START
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Checkpointer

from aidsafe.graphs import deliberation
from aidsafe.graphs.wiring import COMPLETE_OUTPUT, add_agent, as_provider, complete_output, graph_builder, unless_error
from aidsafe.nodes import ear_whisperer, keep_best, whispered_generator
from aidsafe.nodes.agent import agent_node
from aidsafe.nodes.llm import ModelProvider
from aidsafe.nodes.scorer import ScorerFromContext, ViolationScorer
from aidsafe.state.preference import PreferenceInput, PreferenceOutput, PreferenceState

GRAPH_NAME = "aidsafe_preference"
DELIBERATION = "deliberation"
SCORE_CHOSEN = "score_chosen"
SCORE_REJECTED = "score_rejected"


def _chosen_source(state: PreferenceState) -> Literal["deliberation", "score_chosen"]:
    return "score_chosen" if state.get("chosen") else "deliberation"


def _after_keep_best(state: PreferenceState) -> str:
    return END if state.get("whisper_stop") else ear_whisperer.NAME


def build_graph(
    n_deliberators: int = 2,
    *,
    model: BaseChatModel | ModelProvider | None = None,
    scorer: ViolationScorer | None = None,
    checkpointer: Checkpointer = None,
    name: str = GRAPH_NAME,
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Compile the preference graph.

    `model` replaces the default `ChatOpenAI` client for every role (or is a function of role and
    context); `scorer` replaces the default (the LLM judge, or the HTTP classifier at the run's
    `scorer_url`). The deliberation for the chosen side uses `n_deliberators` agents.
    """
    provider = as_provider(model)
    violation_scorer = scorer or ScorerFromContext(provider)
    builder = graph_builder(PreferenceState, PreferenceInput, PreferenceOutput)
    builder.add_node(
        DELIBERATION,
        deliberation.build_graph(n_deliberators, model=provider),
        metadata={"agent_role": "deliberation"},
    )
    builder.add_node(
        SCORE_CHOSEN, violation_scorer.node(SCORE_CHOSEN, "chosen"), metadata={"agent_role": "judge", "side": "chosen"}
    )
    add_agent(builder, agent_node(ear_whisperer.NAME, "whisperer", ear_whisperer.whisper, provider))
    add_agent(builder, agent_node(whispered_generator.NAME, "generator", whispered_generator.generate, provider))
    builder.add_node(
        SCORE_REJECTED,
        violation_scorer.node(SCORE_REJECTED, "rejected"),
        metadata={"agent_role": "judge", "side": "rejected"},
    )
    builder.add_node(keep_best.NAME, keep_best.keep_best, metadata={"agent_role": "keep_best"})
    builder.add_node(COMPLETE_OUTPUT, complete_output(PreferenceOutput))

    builder.add_conditional_edges(START, _chosen_source, [DELIBERATION, SCORE_CHOSEN])
    builder.add_conditional_edges(DELIBERATION, unless_error(SCORE_CHOSEN), [SCORE_CHOSEN, COMPLETE_OUTPUT])
    builder.add_conditional_edges(SCORE_CHOSEN, unless_error(ear_whisperer.NAME), [ear_whisperer.NAME, COMPLETE_OUTPUT])
    builder.add_conditional_edges(
        ear_whisperer.NAME, unless_error(whispered_generator.NAME), [whispered_generator.NAME, COMPLETE_OUTPUT]
    )
    builder.add_conditional_edges(
        whispered_generator.NAME, unless_error(SCORE_REJECTED), [SCORE_REJECTED, COMPLETE_OUTPUT]
    )
    builder.add_conditional_edges(SCORE_REJECTED, unless_error(keep_best.NAME), [keep_best.NAME, COMPLETE_OUTPUT])
    builder.add_conditional_edges(keep_best.NAME, _after_keep_best, [ear_whisperer.NAME, END])
    builder.add_edge(COMPLETE_OUTPUT, END)
    return builder.compile(checkpointer=checkpointer, name=name)


graph = build_graph()
"""Two deliberators, scorer chosen per run, no checkpointer: what `langgraph.json` and Studio load."""
