"""Wiring every graph shares: the model argument, adding an agent node, and stopping on an error."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableLambda
from langgraph.graph import StateGraph

from aidsafe.nodes.agent import AgentNode
from aidsafe.nodes.context import Context
from aidsafe.nodes.llm import ModelProvider
from aidsafe.state.outputs import missing_outputs


def as_provider(model: BaseChatModel | ModelProvider | None) -> ModelProvider | None:
    """Accept one chat model for every role, or a `(role, context) -> model` function."""
    if isinstance(model, BaseChatModel):
        return lambda _role, _ctx: model
    return model


def graph_builder(state: type, input_schema: type, output_schema: type) -> StateGraph[Any, Any, Any, Any]:
    """A graph over `state` whose runs take every setting from `Context` (the runtime context
    Studio shows as a form) and show only `input_schema` and `output_schema` to callers."""
    return StateGraph(state, context_schema=Context, input_schema=input_schema, output_schema=output_schema)


def add_agent(builder: StateGraph[Any, Any, Any, Any], node: AgentNode, **metadata: Any) -> None:
    """Add an agent node under its own name, with its role in the node metadata that traces show."""
    builder.add_node(node.name, node, metadata={"agent_role": node.role, **metadata})


COMPLETE_OUTPUT = "complete_output"
"""The node every graph ends in after an error: it adds each output key nothing wrote, empty."""


def complete_output(output_schema: type) -> RunnableLambda:
    """The `COMPLETE_OUTPUT` node: a failed sample still returns every output key of its graph."""

    def complete(state: Mapping[str, Any]) -> dict[str, Any]:
        return missing_outputs(output_schema, state)

    return RunnableLambda(complete, name=COMPLETE_OUTPUT)


def unless_error(next_node: str) -> Callable[[Mapping[str, Any]], str]:
    """Route to `next_node`, or to `COMPLETE_OUTPUT` (then END) when the node before wrote an error."""

    def route(state: Mapping[str, Any]) -> str:
        return COMPLETE_OUTPUT if state.get("error") else next_node

    return route
