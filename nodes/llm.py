"""Model clients and structured answers.

Every agent answers in a pydantic schema. The request format depends on the server: OpenAI and
vLLM take `json_schema`; llama.cpp rejects it but grammar-constrains `json_object` with a schema;
anything with tools takes `function_calling`. Parsing is ours in every mode, so a malformed
answer is re-asked with the parse error shown to the model, a bounded number of times.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Generator, Mapping, Sequence
from functools import lru_cache
from typing import Any, TypeVar
from urllib.parse import urlparse

import openai
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.rate_limiters import BaseRateLimiter
from langchain_core.runnables import Runnable
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, ValidationError

from aidsafe.nodes.context import EMBEDDED, Context, Role, StructuredOutput
from aidsafe.state.deliberation import Usage

Answer = TypeVar("Answer", bound=BaseModel)
ModelProvider = Callable[[Role, Context], BaseChatModel]
"""Returns the chat model for a role: lets tests and users plug in any LangChain chat model."""

API_KEY_ENV = {"judge": "AIDSAFE_JUDGE_API_KEY"}


class AgentFailure(RuntimeError):
    """An agent gave up: its answers never parsed, or the server kept failing after retries."""


def resolve_base_url(base_url: str) -> str:
    if base_url == EMBEDDED:
        from aidsafe.embedded import shared_server

        return shared_server().base_url
    return base_url


def _is_openai(base_url: str) -> bool:
    return urlparse(base_url).hostname == "api.openai.com"


def structured_output_mode(ctx: Context, base_url: str) -> StructuredOutput:
    if ctx.structured_output != "auto":
        return ctx.structured_output
    return "json_schema" if _is_openai(base_url) else "json_object"


@lru_cache(maxsize=64)
def _chat_openai(
    model: str,
    base_url: str,
    temperature: float,
    max_tokens: int,
    timeout: float,
    retries: int,
    key_env: str,
    http_async_client: Any = None,
    rate_limiter: BaseRateLimiter | None = None,
) -> ChatOpenAI:
    # llama.cpp ignores `max_completion_tokens` (what ChatOpenAI sends for max_tokens): without
    # `max_tokens` in the body a grammar-constrained answer can loop until the context is full.
    extra_body = None if _is_openai(base_url) else {"max_tokens": max_tokens}
    return ChatOpenAI(
        model=model,
        base_url=base_url,
        api_key=os.environ.get(key_env) or os.environ.get("OPENAI_API_KEY") or "not-needed",  # type: ignore[arg-type]
        temperature=temperature,
        max_tokens=max_tokens,  # type: ignore[call-arg]
        timeout=timeout,
        max_retries=retries,  # the openai client backs off on timeouts, 408/409/429 and 5xx
        extra_body=extra_body,
        http_async_client=http_async_client,
        rate_limiter=rate_limiter,
    )


def openai_compatible_model(
    role: Role, ctx: Context, *, http_async_client: Any = None, rate_limiter: BaseRateLimiter | None = None
) -> BaseChatModel:
    """The default provider: `ChatOpenAI` against the configured OpenAI-compatible server.

    A batch passes its own `http_async_client` (e.g. `openai.DefaultAioHttpClient()`, less CPU per
    call than httpx) and a shared `rate_limiter`.
    """
    return _chat_openai(
        ctx.model_for(role),
        resolve_base_url(ctx.base_url_for(role)),
        ctx.temperature,
        ctx.max_tokens,
        ctx.request_timeout,
        ctx.http_retries,
        API_KEY_ENV.get(role, "OPENAI_API_KEY"),
        http_async_client,
        rate_limiter,
    )


def constrained(model: BaseChatModel, schema: dict[str, Any], name: str, mode: StructuredOutput) -> Runnable:
    """Bind the request format that makes the server answer in `schema`."""
    if mode == "function_calling":
        tool = {"type": "function", "function": {"name": name, "parameters": schema}}
        return model.bind_tools([tool], tool_choice=name)
    if mode == "json_schema":
        response_format = {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}
    else:
        response_format = {"type": "json_object", "schema": schema}
    if isinstance(model, ChatOpenAI):
        # In the body as is: as a typed argument the openai SDK takes its `parse` path and walks the
        # whole schema through its type transforms, ~1-7 ms of CPU per call, which caps a batch's
        # throughput at high concurrency. We parse answers ourselves anyway.
        return model.bind(extra_body={**(model.extra_body or {}), "response_format": response_format})
    return model.bind(response_format=response_format)


def raw_answer(message: AIMessage) -> str:
    if message.tool_calls:
        return json.dumps(message.tool_calls[0]["args"])
    return message.text


def parse_answer(message: AIMessage, schema_cls: type[Answer], validation_context: Mapping[str, Any] | None) -> Answer:
    raw = raw_answer(message).strip()
    if raw.startswith("```"):  # models without constrained decoding like to fence JSON
        raw = raw.strip("`").removeprefix("json").strip()
    context = dict(validation_context or {})
    try:
        return schema_cls.model_validate_json(raw, context=context)
    except ValidationError as exc:
        if exc.errors()[0]["type"] != "json_invalid":
            raise
        try:  # small models put raw newlines inside strings (even grammar-constrained): JSON forbids them
            data = json.loads(raw, strict=False)
        except ValueError:
            raise exc from None
        return schema_cls.model_validate(data, context=context)


def usage_of(message: AIMessage) -> Usage:
    """The call's tokens, also under the model the server says answered (for its price)."""
    usage = message.usage_metadata
    counted: Usage = {
        "llm_calls": 1,
        "input_tokens": usage["input_tokens"] if usage else 0,
        "output_tokens": usage["output_tokens"] if usage else 0,
    }
    model = message.response_metadata.get("model_name")
    if model:
        cached = (usage.get("input_token_details") or {}).get("cache_read", 0) if usage else 0
        counted["by_model"] = {
            model: {
                "input_tokens": counted["input_tokens"],
                "cached_input_tokens": cached or 0,
                "output_tokens": counted["output_tokens"],
            }
        }
    return counted


class StructuredCall:
    """One structured model call with bounded re-asks; keeps the usage of every attempt.

    The re-ask loop is written once, as a generator that yields the messages to send and receives
    the model's reply; `invoke` and `ainvoke` only drive it.
    """

    def __init__(
        self,
        model: BaseChatModel,
        schema_cls: type[BaseModel],
        ctx: Context,
        base_url: str = "",
        json_schema: dict[str, Any] | None = None,
        validation_context: Mapping[str, Any] | None = None,
    ) -> None:
        mode = structured_output_mode(ctx, base_url)
        schema = json_schema or schema_cls.model_json_schema()
        self.runnable = constrained(model, schema, schema_cls.__name__, mode)
        self.schema_cls = schema_cls
        self.attempts = ctx.parse_retries + 1
        self.max_tokens = ctx.max_tokens
        self.validation_context = validation_context
        self.usage: list[Usage] = []

    def _conversation(self, messages: Sequence[BaseMessage]) -> Generator[list[BaseMessage], AIMessage, BaseModel]:
        history, error = list(messages), ""
        for _ in range(self.attempts):
            reply = yield history
            self.usage.append(usage_of(reply))
            if reply.response_metadata.get("finish_reason") == "length":
                error = f"the answer was cut off at {self.max_tokens} tokens; answer much more briefly"
            else:
                try:
                    return parse_answer(reply, self.schema_cls, self.validation_context)
                except ValueError as exc:  # pydantic's ValidationError is a ValueError
                    error = str(exc)
            history = [
                *history,
                AIMessage(content=raw_answer(reply)),
                HumanMessage(
                    content=f"Your answer could not be used: {error}\n"
                    "Answer again with one JSON object that follows the required fields exactly."
                ),
            ]
        raise AgentFailure(f"no valid {self.schema_cls.__name__} after {self.attempts} attempts: {error}")

    def invoke(self, messages: Sequence[BaseMessage]) -> BaseModel:
        conversation = self._conversation(messages)
        history = next(conversation)
        while True:
            try:
                reply = self.runnable.invoke(history)
            except openai.OpenAIError as exc:
                reply = cut_off_reply(exc)
            try:
                history = conversation.send(reply)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    async def ainvoke(self, messages: Sequence[BaseMessage]) -> BaseModel:
        conversation = self._conversation(messages)
        history = next(conversation)
        while True:
            try:
                reply = await self.runnable.ainvoke(history)
            except openai.OpenAIError as exc:
                reply = cut_off_reply(exc)
            try:
                history = conversation.send(reply)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]


def cut_off_reply(exc: openai.OpenAIError) -> AIMessage:
    """An answer cut at `max_tokens` is a malformed answer (re-asked); other errors end the agent.

    The openai client has already retried timeouts, 429 and 5xx with backoff by then.
    """
    if not isinstance(exc, openai.LengthFinishReasonError):
        raise AgentFailure(f"model server failed after retries: {type(exc).__name__}: {exc}") from exc
    completion = exc.completion
    usage = completion.usage
    return AIMessage(
        content=completion.choices[0].message.content or "" if completion.choices else "",
        response_metadata={"finish_reason": "length", "model_name": completion.model},
        usage_metadata={
            "input_tokens": usage.prompt_tokens if usage else 0,
            "output_tokens": usage.completion_tokens if usage else 0,
            "total_tokens": usage.total_tokens if usage else 0,
        },
    )
