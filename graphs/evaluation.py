"""Grading as a graph, so every judge call is traceable in LangSmith and visible in Studio.

    START -+-> grade_relevance ----------------+-> complete_output -> END
           +-> grade_coherence ----------------+
           +-> ... (one node per rubric) ------+
           +-> pairwise_judge (if both) -------+

Every rubric node grades each side given (`run`, `baseline`) in parallel with the others; the
pairwise judge runs only when both sides are there to compare. `complete_output` gives
every output key nothing wrote (`pairwise` without a baseline) its empty value.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from aidsafe.graphs.wiring import COMPLETE_OUTPUT, add_agent, as_provider, complete_output
from aidsafe.nodes import grader, pairwise_judge
from aidsafe.nodes.agent import agent_node
from aidsafe.nodes.context import Context
from aidsafe.nodes.llm import ModelProvider
from aidsafe.state.evaluation import RUBRICS, EvaluationInput, EvaluationOutput, EvaluationState

GRAPH_NAME = "aidsafe_evaluation"
RUBRIC_NODES = [grader.node_name(rubric) for rubric in RUBRICS]


def _checks(state: EvaluationState) -> list[str]:
    both = state.get("run") and state.get("baseline")
    return [*RUBRIC_NODES, pairwise_judge.NAME] if both else list(RUBRIC_NODES)


def build_graph(
    *, model: BaseChatModel | ModelProvider | None = None, name: str = GRAPH_NAME
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Compile the evaluation graph; the judge is role "judge" (`judge_model`, `judge_base_url`)."""
    provider = as_provider(model)
    builder: StateGraph[Any, Any, Any, Any] = StateGraph(
        EvaluationState, context_schema=Context, input_schema=EvaluationInput, output_schema=EvaluationOutput
    )
    for rubric, node in zip(RUBRICS, RUBRIC_NODES, strict=True):
        add_agent(builder, agent_node(node, "judge", grader.grader(rubric), provider))
    add_agent(builder, agent_node(pairwise_judge.NAME, "judge", pairwise_judge.compare, provider))
    builder.add_node(COMPLETE_OUTPUT, complete_output(EvaluationOutput))
    builder.add_conditional_edges(START, _checks, [*RUBRIC_NODES, pairwise_judge.NAME])
    for node in [*RUBRIC_NODES, pairwise_judge.NAME]:
        builder.add_edge(node, COMPLETE_OUTPUT)
    builder.add_edge(COMPLETE_OUTPUT, END)
    return builder.compile(name=name)


graph = build_graph()
