"""Wiring every graph shares: the model argument, adding an agent node, and stopping on an error."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.graph import END, StateGraph

from aidsafe.nodes.agent import AgentNode
from aidsafe.nodes.llm import ModelProvider


def as_provider(model: BaseChatModel | ModelProvider | None) -> ModelProvider | None:
    """Accept one chat model for every role, or a `(role, context) -> model` function."""
    if isinstance(model, BaseChatModel):
        return lambda _role, _ctx: model
    return model


def add_agent(builder: StateGraph[Any, Any, Any, Any], node: AgentNode, **metadata: Any) -> None:
    """Add an agent node under its own name, with its role in the node metadata that traces show."""
    builder.add_node(node.name, node, metadata={"agent_role": node.role, **metadata})


def unless_error(next_node: str) -> Callable[[Mapping[str, Any]], str]:
    """Route to `next_node`, or end the sample when the node before wrote an error."""

    def route(state: Mapping[str, Any]) -> str:
        return END if state.get("error") else next_node

    return route
