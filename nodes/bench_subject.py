"""The model under test answers the bench prompt as a user would send it: no policies, no schema.

It is any OpenAI-compatible server (the embedded model and an `aidsafe train` folder are served
as one too). A reply that opens with a `<think>` block (models trained on aidsafe's exports
reason first) is judged on what follows the block; the whole reply is kept in the record.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import openai
from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig

from aidsafe.nodes.context import Context, node_context
from aidsafe.nodes.llm import ModelProvider, openai_compatible_model, usage_of

NAME = "answer"


@dataclass(frozen=True)
class Subject:
    """Where the model under test answers: an OpenAI-compatible `base_url` and the model name."""

    base_url: str
    model: str


def final_response(answer: str) -> str:
    """The reply after a leading `<think>...</think>`; a block never closed (cut off) leaves nothing."""
    text = answer.strip()
    if not text.startswith("<think>"):
        return text
    _, closed, rest = text.partition("</think>")
    return rest.strip() if closed else ""


def subject_node(subject: Subject, provider: ModelProvider | None = None) -> Callable[..., Awaitable[dict[str, Any]]]:
    """The node (async) that asks the model under test, with the run's sampling settings and limits."""
    model_provider = provider or openai_compatible_model

    async def answer(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        ctx = node_context(config)
        settings = Context(
            model=subject.model,
            base_url=subject.base_url,
            temperature=ctx.temperature,
            max_tokens=ctx.max_tokens,
            request_timeout=ctx.request_timeout,
            http_retries=ctx.http_retries,
        )
        chat = model_provider("generator", settings)
        try:
            reply = await chat.ainvoke([HumanMessage(content=state["prompt"])], config)
        except openai.OpenAIError as exc:
            message = f"model under test failed after retries: {type(exc).__name__}: {exc}"
            return {"error": {"node": NAME, "message": message}}
        text = reply.text
        return {"answer": text, "response": final_response(text), "usage": usage_of(reply), "error": None}

    return answer
