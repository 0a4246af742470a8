"""Grading as a graph, so every judge call is traceable in LangSmith and visible in Studio.

    START -+-> grade_relevance ----------------+-> complete_output -> END
           +-> grade_coherence ----------------+
           +-> ... (one node per rubric) ------+
           +-> grade_<rubric>_baseline ---------+  (if a baseline is given)
           +-> pairwise_judge (if both) -------+
           +-> harm_response, harm_thoughts ---+  (check_thoughts: the scorer on the run's record)

Every rubric node grades one side (`grade_<rubric>` the run, `grade_<rubric>_baseline` the
baseline) in parallel with the others, one model call per node; the pairwise judge runs only when
both sides are there to compare; the harm checks only when the run's context sets `check_thoughts`.
`complete_output` gives every output key nothing wrote
(`pairwise` without a baseline) its empty value.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Checkpointer

from aidsafe.graphs.wiring import COMPLETE_OUTPUT, add_agent, as_provider, complete_output, graph_builder
from aidsafe.nodes import grader, harm_check, pairwise_judge
from aidsafe.nodes.agent import agent_node
from aidsafe.nodes.context import node_context
from aidsafe.nodes.llm import ModelProvider
from aidsafe.nodes.scorer import ScorerFromContext
from aidsafe.state.evaluation import RUBRICS, EvaluationInput, EvaluationOutput, EvaluationState

GRAPH_NAME = "aidsafe_evaluation"
RUBRIC_NODES = [grader.node_name(rubric) for rubric in RUBRICS]
BASELINE_RUBRIC_NODES = [grader.node_name(rubric, "baseline") for rubric in RUBRICS]
"""The same rubrics for the baseline side: one node per grade, so a resumed run pays only for missing grades."""


HARM_NODES = list(harm_check.NAMES.values())


def _checks(state: EvaluationState, config: RunnableConfig) -> list[str]:
    nodes = [*(RUBRIC_NODES if state.get("run") else []), *(BASELINE_RUBRIC_NODES if state.get("baseline") else [])]
    if state.get("run") and node_context(config).check_thoughts:
        nodes += HARM_NODES
    return [*nodes, pairwise_judge.NAME] if state.get("run") and state.get("baseline") else nodes


def build_graph(
    *,
    model: BaseChatModel | ModelProvider | None = None,
    checkpointer: Checkpointer = None,
    name: str = GRAPH_NAME,
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Compile the evaluation graph; the judge is role "judge" (`judge_model`, `judge_base_url`)."""
    provider = as_provider(model)
    builder = graph_builder(EvaluationState, EvaluationInput, EvaluationOutput)
    for side, nodes in (("run", RUBRIC_NODES), ("baseline", BASELINE_RUBRIC_NODES)):
        for rubric, node in zip(RUBRICS, nodes, strict=True):
            add_agent(builder, agent_node(node, "judge", grader.grader(rubric, side), provider))  # type: ignore[arg-type]
    add_agent(builder, agent_node(pairwise_judge.NAME, "judge", pairwise_judge.compare, provider))
    scorer = ScorerFromContext(provider)
    for part, node in harm_check.NAMES.items():
        builder.add_node(node, harm_check.harm_check(scorer, part), metadata={"agent_role": "judge", "part": part})
    builder.add_node(COMPLETE_OUTPUT, complete_output(EvaluationOutput))
    every = [*RUBRIC_NODES, *BASELINE_RUBRIC_NODES, pairwise_judge.NAME, *HARM_NODES]
    builder.add_conditional_edges(START, _checks, every)
    for node in every:
        builder.add_edge(node, COMPLETE_OUTPUT)
    builder.add_edge(COMPLETE_OUTPUT, END)
    return builder.compile(checkpointer=checkpointer, name=name)


graph = build_graph()
