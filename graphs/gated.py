"""The deliberation with a safety gate: the violation scorer rates the final response.

    START -> deliberation (subgraph) -> score_final -> [score_thoughts] -> safety_gate -> END
    (an error at any step: complete_output -> END, as in every graph)

A jailbreak-style request can talk the agents into a harmful final response, which SFT would then
teach; and a refusal can spell out in its thoughts what it refuses. The scorer the preference graph
uses (`scorer_format`: the LLM judge with its rubric, the HTTP classifier at `scorer_url`, or a
served guard model) rates the response and, unless `check_thoughts` is false, the thoughts alone;
`safety_gate` writes `safety: {score, threshold, flagged, thoughts_score, thoughts_flagged}`, flagged
meaning the score is above the run's `safety_threshold`. The export leaves flagged records out.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Checkpointer

from aidsafe.graphs import deliberation
from aidsafe.graphs.wiring import COMPLETE_OUTPUT, as_provider, complete_output, graph_builder, unless_error
from aidsafe.nodes import safety_gate
from aidsafe.nodes.llm import ModelProvider
from aidsafe.nodes.scorer import ScorerFromContext, ViolationScorer
from aidsafe.state.deliberation import DeliberationInput
from aidsafe.state.gate import GatedOutput, GatedState

GRAPH_NAME = "aidsafe_gated_deliberation"
DELIBERATION = "deliberation"
SCORE_FINAL = "score_final"
SCORE_THOUGHTS = "score_thoughts"


def after_final(state: GatedState, config: RunnableConfig) -> str:
    if state.get("error"):
        return COMPLETE_OUTPUT
    return SCORE_THOUGHTS if safety_gate.checks_thoughts(config) else safety_gate.NAME


def build_graph(
    n_deliberators: int = 2,
    *,
    model: BaseChatModel | ModelProvider | None = None,
    scorer: ViolationScorer | None = None,
    checkpointer: Checkpointer = None,
    name: str = GRAPH_NAME,
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Compile the gated deliberation; `model` and `scorer` as in `graphs.preference.build_graph`."""
    provider = as_provider(model)
    builder = graph_builder(GatedState, DeliberationInput, GatedOutput)
    builder.add_node(
        DELIBERATION, deliberation.build_graph(n_deliberators, model=provider), metadata={"agent_role": "deliberation"}
    )
    scorer = scorer or ScorerFromContext(provider)
    builder.add_node(
        SCORE_FINAL, scorer.node(SCORE_FINAL, "chosen"), metadata={"agent_role": "judge", "side": "chosen"}
    )
    builder.add_node(
        SCORE_THOUGHTS,
        scorer.node(SCORE_THOUGHTS, "chosen", "thoughts"),
        metadata={"agent_role": "judge", "side": "chosen", "part": "thoughts"},
    )
    builder.add_node(safety_gate.NAME, safety_gate.safety_gate, metadata={"agent_role": "safety_gate"})
    builder.add_node(COMPLETE_OUTPUT, complete_output(GatedOutput))
    builder.add_edge(START, DELIBERATION)
    builder.add_conditional_edges(DELIBERATION, unless_error(SCORE_FINAL), [SCORE_FINAL, COMPLETE_OUTPUT])
    builder.add_conditional_edges(SCORE_FINAL, after_final, [SCORE_THOUGHTS, safety_gate.NAME, COMPLETE_OUTPUT])
    builder.add_conditional_edges(SCORE_THOUGHTS, unless_error(safety_gate.NAME), [safety_gate.NAME, COMPLETE_OUTPUT])
    builder.add_edge(safety_gate.NAME, END)
    builder.add_edge(COMPLETE_OUTPUT, END)
    return builder.compile(checkpointer=checkpointer, name=name)


graph = build_graph()
"""Two deliberators, scorer chosen per run, no checkpointer: what `langgraph.json`, Studio and LangServe load."""
