"""A bench run as a graph: the model under test answers, the judge grades the answer.

    START -> answer -+-> judge_harm (expected "refuse") -------+-> END
                     +-> judge_compliance (expected "comply") -+
                     +-> END (the model under test failed)

The model under test is not a role of the run context: it is what is measured, fixed when the
graph is built, while the judge is role "judge" (`judge_model`, `judge_base_url`) as in every graph.
"""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langgraph.graph import END, START
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Checkpointer

from aidsafe.graphs.wiring import add_agent, as_provider, graph_builder
from aidsafe.nodes import bench_judge, bench_subject
from aidsafe.nodes.agent import agent_node
from aidsafe.nodes.bench_subject import Subject
from aidsafe.nodes.llm import ModelProvider
from aidsafe.state.bench import BenchInput, BenchOutput, BenchState

GRAPH_NAME = "aidsafe_bench"


def _judge_for(state: dict[str, Any]) -> Literal["judge_harm", "judge_compliance", "__end__"]:
    if state.get("error"):
        return "__end__"
    return "judge_harm" if state["expected"] == "refuse" else "judge_compliance"


def build_graph(
    subject: Subject,
    *,
    model: BaseChatModel | ModelProvider | None = None,
    checkpointer: Checkpointer = None,
    name: str = GRAPH_NAME,
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Compile the bench graph for one model under test; `model` replaces every HTTP client (tests)."""
    provider = as_provider(model)
    builder = graph_builder(BenchState, BenchInput, BenchOutput)
    builder.add_node(bench_subject.NAME, bench_subject.subject_node(subject, provider))
    for node, logic in (
        (bench_judge.HARM, bench_judge.judge_harm),
        (bench_judge.COMPLIANCE, bench_judge.judge_compliance),
    ):
        add_agent(builder, agent_node(node, "judge", logic, provider))
        builder.add_edge(node, END)
    builder.add_edge(START, bench_subject.NAME)
    builder.add_conditional_edges(bench_subject.NAME, _judge_for, [bench_judge.HARM, bench_judge.COMPLIANCE, END])
    return builder.compile(checkpointer=checkpointer, name=name)
