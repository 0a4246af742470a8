"""Model clients and structured answers.

Every agent answers in a pydantic schema. The request format depends on the server (`nodes/servers.py`
says which it is): OpenAI's `json_schema` for every server that takes it (vLLM, SGLang, Ollama,
llama.cpp's `llama-server`, LM Studio; vLLM ignores a schema inside `json_object`), with `strict`
and the `strict_schema` for OpenAI itself; llama-cpp-python's server (the embedded model) rejects
`json_schema` but grammar-constrains `json_object` with a schema; anything with tools takes
`function_calling`. Parsing is ours in every mode, so a malformed answer is re-asked with the parse
error shown to the model, a bounded number of times. What an answer must be, how it is read and
salvaged, and the schema forms sent (brief, strict) are the answer contract in `state/answers.py`;
this module only sends and re-asks.

Model-call logic is written once, as a `Conversation` generator that yields `Request`s and gets
the replies back; `drive` and `adrive` are the only sync and async code that talks to a model.
Under a spending cap, `adrive` asks the run's `Spending` before each call (`--max-cost`). In batch
mode (`--mode batch|offline`) it sends nothing: each call stops the node at LangGraph's `interrupt`
with the request's body, and the node is resumed with the answer from a batch (`waiting_call`,
`batch/waves.py`); the answer then goes through the same contract.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache, partial
from typing import Any, Generic, NotRequired, Protocol, TypedDict, TypeVar, get_args

import openai
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.rate_limiters import BaseRateLimiter
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_openai import ChatOpenAI
from langgraph.func import task
from langgraph.types import interrupt
from pydantic import BaseModel, SecretStr

from aidsafe.embedded.llama_server import died_at
from aidsafe.nodes.context import EMBEDDED, Context, Role, StructuredOutput, endpoint_urls
from aidsafe.nodes.servers import is_openai_api, known, server_kind
from aidsafe.nodes.templates import template
from aidsafe.state.answers import AgentAnswer, AnswerContext, brief_schema, parse_answer, salvage, strict_schema
from aidsafe.state.deliberation import AnswerRepair, Usage

Result = TypeVar("Result")
ModelProvider = Callable[[Role, Context], BaseChatModel]
"""Returns the chat model for a role: lets tests and users plug in any LangChain chat model."""

API_KEY_ENV = {"judge": "AIDSAFE_JUDGE_API_KEY"}


class AgentFailure(RuntimeError):
    """An agent gave up: its answers never parsed, or the server kept failing after retries."""


def resolve_base_url(base_url: str) -> str:
    """The URL the chat model is built for: the embedded server's, or the first endpoint's (a batch
    client spreads the requests over all of them)."""
    if base_url == EMBEDDED:
        from aidsafe.embedded import shared_server

        return shared_server().base_url
    return endpoint_urls(base_url)[0]


def structured_output_mode(ctx: Context, base_url: str, api_key: str | None = None) -> StructuredOutput:
    """`auto`: `json_schema`, but `json_object` with a schema for llama-cpp-python's server."""
    if ctx.structured_output != "auto":
        return ctx.structured_output
    return "json_object" if server_kind(base_url, api_key) == "llama-cpp-python" else "json_schema"


def ask_servers(ctx: Context) -> None:
    """Learn the kind of every server the run's roles use, once per process: blocking, so async
    code runs it in a thread while `servers_unknown` (a batch before its samples start)."""
    if _asks_servers(ctx):
        for role in get_args(Role):
            server_kind(ctx.base_url_for(role), api_key(role))


def servers_unknown(ctx: Context) -> bool:
    """Whether a structured call of this run would ask a server what it is (see `ask_servers`)."""
    return _asks_servers(ctx) and not all(known(ctx.base_url_for(role)) for role in get_args(Role))


def _asks_servers(ctx: Context) -> bool:
    """`auto` picks the form by the server; `json_schema` needs to know OpenAI for `strict`."""
    return ctx.structured_output in ("auto", "json_schema")


def api_key(role: Role) -> str:
    return os.environ.get(API_KEY_ENV.get(role, "OPENAI_API_KEY")) or os.environ.get("OPENAI_API_KEY") or "not-needed"


SDK_ARGUMENTS = frozenset({"stream", "response_format", "extra_body", "extra_headers", "extra_query", "timeout"})
"""What `PassThroughChatOpenAI` leaves an argument of the SDK's `create`: it needs them itself."""

IN_THE_BODY = {"model": openai.omit, "messages": openai.omit}
"""`create` requires these arguments; `omit` keeps them out of its transforms (the model's type is a
union with a literal of every OpenAI model name, hashed on every call), and the body has them."""


class PassThroughChatOpenAI(ChatOpenAI):
    """`ChatOpenAI` whose request body reaches the openai SDK as `extra_body`, sent as it is.

    The SDK walks each typed argument of a request through its TypedDict transforms (aliases,
    dates, base64 files) before it serialises it; plain chat messages, JSON-schema tools, the model
    name and numbers come out unchanged, after CPU that caps a batch's throughput at high
    concurrency (`benchmarks/client_profile.py`). Only what the SDK needs itself stays an argument
    (`SDK_ARGUMENTS`). `extra_body` is merged into the body key by key, so the server gets the same
    JSON object.
    """

    def _get_request_payload(self, input_: Any, *, stop: list[str] | None = None, **kwargs: Any) -> dict:
        payload = super()._get_request_payload(input_, stop=stop, **kwargs)
        if self._use_responses_api(payload):
            return payload
        body = {key: value for key, value in payload.items() if key not in SDK_ARGUMENTS}
        arguments = {key: value for key, value in payload.items() if key in SDK_ARGUMENTS}
        return {**arguments, **IN_THE_BODY, "extra_body": {**(payload.get("extra_body") or {}), **body}}


@lru_cache(maxsize=64)
def _chat_openai(
    model: str,
    base_url: str,
    temperature: float,
    max_tokens: int,
    timeout: float,
    retries: int,
    key: str,
    http_async_client: Any = None,
    rate_limiter: BaseRateLimiter | None = None,
) -> ChatOpenAI:
    # llama.cpp ignores `max_completion_tokens` (what ChatOpenAI sends for max_tokens): without
    # `max_tokens` in the body a grammar-constrained answer can loop until the context is full.
    extra_body = None if is_openai_api(base_url) else {"max_tokens": max_tokens}
    return PassThroughChatOpenAI(
        model=model,
        base_url=base_url,
        api_key=key,  # type: ignore[arg-type]
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
    call than httpx) and a shared `rate_limiter`. Several endpoints in one `base_url` need the batch
    engine's client, which spreads the requests over them.
    """
    if http_async_client is None and len(endpoint_urls(ctx.base_url_for(role))) > 1:
        raise ValueError(
            "several base URLs are spread over by the batch engine (aidsafe generate, prefer, evaluate); "
            "give one URL here"
        )
    return _chat_openai(
        ctx.model_for(role),
        resolve_base_url(ctx.base_url_for(role)),
        ctx.temperature,
        ctx.max_tokens,
        ctx.request_timeout,
        ctx.http_retries,
        api_key(role),
        http_async_client,
        rate_limiter,
    )


def constrained(
    model: BaseChatModel, schema: dict[str, Any], name: str, mode: StructuredOutput, *, strict: bool = False
) -> Runnable:
    """Bind the request format that makes the server answer in `schema`; `strict`: OpenAI's strict
    mode, with the `strict_schema` of `schema`."""
    if mode == "function_calling":
        tool = {"type": "function", "function": {"name": name, "parameters": schema}}
        return model.bind_tools([tool], tool_choice=name)
    if mode == "json_schema":
        form = (
            {"name": name, "strict": True, "schema": strict_schema(schema)}
            if strict
            else {"name": name, "schema": schema}
        )
        response_format = {"type": "json_schema", "json_schema": form}
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


def reask(name: str, **values: Any) -> str:
    """A re-ask message from its template beside this module (`nodes/<name>.md`)."""
    return template(name).substitute(**values).strip()


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


MESSAGE_OVERHEAD_TOKENS = 16
"""Tokens a chat template adds around each message (role markers, special tokens), counted generously."""


@dataclass(frozen=True)
class Request:
    """What a conversation asks its driver to send: `messages` to `runnable`, the reply sent back.

    `model`, `max_tokens` and the answer `schema` size the call for a spending cap (`prompt_tokens`).
    """

    runnable: Runnable
    messages: list[BaseMessage]
    model: str
    max_tokens: int
    schema: dict[str, Any]

    def prompt_tokens(self) -> int:
        """An upper bound of the prompt's tokens without a tokenizer: its UTF-8 bytes. Byte-level BPE
        (GPT, Llama 3, Qwen, SmolLM) and SentencePiece with byte fallback never make a token of less
        than one byte. The answer schema is counted too: a server that puts it in the prompt (tools,
        some structured-output modes) bills it."""
        texts = [message.text for message in self.messages] + [json.dumps(self.schema)]
        return sum(len(text.encode()) for text in texts) + MESSAGE_OVERHEAD_TOKENS * len(self.messages)


Reply = AIMessage | openai.OpenAIError
"""What the driver sends back: the model's message, or the client's error after its own retries."""
Conversation = Generator[Request, Reply, Result]
"""Model-call logic written once: it yields requests and returns its result; a driver does the I/O."""


def _send(request: Request) -> Reply:
    try:
        return request.runnable.invoke(request.messages)
    except openai.OpenAIError as exc:
        return exc


async def _asend(request: Request) -> Reply:
    try:
        return await request.runnable.ainvoke(request.messages)
    except openai.OpenAIError as exc:
        return exc


@dataclass(frozen=True)
class _Done(Generic[Result]):
    value: Result


def _advance(
    conversation: Conversation[Result], reply: Reply | None, failure: AgentFailure | None = None
) -> Request | _Done[Result]:
    try:
        if failure is not None:
            return conversation.throw(failure)
        return conversation.send(reply)  # type: ignore[arg-type]  # None starts the generator
    except StopIteration as done:
        return _Done(done.value)


def drive(conversation: Conversation[Result]) -> Result:
    """Run a conversation with blocking calls; `adrive` is the same with `ainvoke`."""
    step = _advance(conversation, None)
    while isinstance(step, Request):
        step = _advance(conversation, _send(step))
    return step.value


async def adrive(
    conversation: Conversation[Result], spending: Spending | None = None, *, waves: bool = False
) -> Result:
    """`spending`: the run's cap; each call is then paid for before it is sent (`paid_call`).
    `waves`: no call is sent; each waits for its answer from a batch (`waiting_call`)."""
    step = _advance(conversation, None)
    calls = 0
    while isinstance(step, Request):
        if waves:
            answered = waiting_call(step, calls)
            calls += 1
            if isinstance(answered, AgentFailure):  # as a call that failed after its retries
                step = _advance(conversation, None, answered)
                continue
            reply: Reply = answered
        elif spending is None:
            reply = await _asend(step)
        else:
            try:
                reply = await spending.track(partial(paid_call, step, spending))  # type: ignore[arg-type]
            except openai.OpenAIError as exc:
                reply = exc
        step = _advance(conversation, reply)
    return step.value


def drive_options(config: RunnableConfig) -> dict[str, Any]:
    """`adrive`'s keyword arguments from a node's run config (set by the batch engine)."""
    configurable = config.get("configurable") or {}
    return {"spending": configurable.get(SPENDING), "waves": bool(configurable.get(WAVES))}


WAVES = "aidsafe_waves"
"""The key in `config["configurable"]` that makes every model call of the sample wait for a batch:
the node stops at `interrupt` with the request's body, and the batch driver resumes it with the
answer (`batch/waves.py`)."""


class WaitingAnswer(TypedDict):
    """What a node waiting for a batch is resumed with: the answer's body, or why there is none."""

    body: NotRequired[dict[str, Any]]
    error: NotRequired[str]


def waiting_call(request: Request, call: int) -> AIMessage | AgentFailure:
    """Stop the node at `interrupt` with the request (its body as the OpenAI Batch API takes it, the
    model's server, and what the spending cap needs), and turn the answer it is resumed with into a
    reply as an HTTP call would have given. `call` numbers the node's calls: a re-ask is the next."""
    model = _chat_model(request)
    payload = {
        "call": call,
        "base_url": model.openai_api_base or "",
        "model": request.model,
        "max_tokens": request.max_tokens,
        "prompt_tokens": request.prompt_tokens(),
        "body": request_body(request),
    }
    answer: WaitingAnswer = interrupt(payload)
    if "body" not in answer:
        return AgentFailure(f"model server failed after retries: {answer.get('error', 'no answer')}")
    return reply_from_body(model, answer["body"])


def _chat_model(request: Request) -> ChatOpenAI:
    model = getattr(request.runnable, "bound", request.runnable)
    if not isinstance(model, ChatOpenAI):
        raise AgentFailure(f"batch mode needs an OpenAI-compatible chat model, not {type(model).__name__}")
    return model


def request_body(request: Request) -> dict[str, Any]:
    """The JSON body the request's HTTP call would send: what a line of a batch request file holds."""
    kwargs = getattr(request.runnable, "kwargs", {})
    payload = _chat_model(request)._get_request_payload(request.messages, **kwargs)
    body = {
        key: value for key, value in payload.items() if key not in SDK_ARGUMENTS and not isinstance(value, openai.Omit)
    }
    return {**body, **(payload.get("extra_body") or {})}


def reply_from_body(model: ChatOpenAI, body: dict[str, Any]) -> AIMessage:
    """A chat completion's JSON body as the message `ainvoke` returns for it (finish reason, model
    name and usage in the same places)."""
    result = model._create_chat_result(body)
    generation = result.generations[0]
    message = generation.message
    assert isinstance(message, AIMessage)
    message.response_metadata = {
        **(generation.generation_info or {}),
        **(result.llm_output or {}),
        **message.response_metadata,
    }
    return message


SPENDING = "aidsafe_spending"
"""The key of a run's `Spending` in `config["configurable"]` (set by the batch engine for each
sample). Only the async path (`adrive`, which the batch engine runs) pays; `drive` never has one."""


class CostCapReached(RuntimeError):
    """A call was not sent: its reservation would have crossed the spending cap."""


class Spending(Protocol):
    """One sample's purse under the run's spending cap (`batch/ledger.py`)."""

    async def pay(self, request: Request, send: Callable[[], Awaitable[Reply]]) -> Reply:
        """Reserve the call's most possible cost, `send` it, settle the reservation with the reply's
        usage. Raises `CostCapReached`, without sending, when the reservation does not fit the cap."""
        ...

    async def track(self, call: Callable[[], Awaitable[AIMessage]]) -> AIMessage:
        """Run one `paid_call` of the sample. After a refusal, raise only once the sample's other
        calls in flight are back (and checkpointed): the graph cancels a node's siblings when it
        fails, and a call cut off mid-way would be paid again by the re-run."""
        ...


@task(name="paid_call")  # type: ignore[arg-type]  # langgraph's overloads reject a Protocol argument
async def paid_call(request: Request, spending: Spending) -> AIMessage:
    """A paid call as a LangGraph task inside the node: its reply is checkpointed as it comes, so
    a node stopped at the cap after some of its calls (two asks, re-asks) does not pay them again
    when a re-run continues it. An answer cut at `max_tokens` is a reply (it was paid); other
    errors are raised, and not kept."""
    reply = await spending.pay(request, lambda: _asend(request))
    if isinstance(reply, openai.LengthFinishReasonError):
        return cut_off_reply(reply)
    if isinstance(reply, openai.OpenAIError):
        raise reply
    return reply


class StructuredCall:
    """One structured model call with bounded re-asks; keeps the usage of every attempt.

    `conversation` is the re-ask loop as a `Conversation`: it yields the messages to send and
    receives the model's reply, so the same code runs under `drive` and `adrive`.
    """

    def __init__(
        self,
        model: BaseChatModel,
        schema_cls: type[BaseModel],
        ctx: Context,
        base_url: str = "",
        json_schema: dict[str, Any] | None = None,
        checks: AnswerContext | None = None,
        model_name: str = "",
    ) -> None:
        """`model_name`: the model the call is priced as (default: the context's `model`)."""
        secret = model.openai_api_key if isinstance(model, ChatOpenAI) else None
        key = secret.get_secret_value() if isinstance(secret, SecretStr) else None
        self.model, self.mode = model, structured_output_mode(ctx, base_url, key)
        self.strict = self.mode == "json_schema" and server_kind(base_url, key) == "openai"
        self.model_name = model_name or ctx.model
        self.schema = json_schema or schema_cls.model_json_schema()
        self.runnable = constrained(model, self.schema, schema_cls.__name__, self.mode, strict=self.strict)
        self.schema_cls = schema_cls
        self.attempts = ctx.parse_retries + 1
        self.max_tokens = ctx.max_tokens
        self.checks = checks
        self.usage: list[Usage] = []
        self.repairs: list[AnswerRepair] = []
        self.refusals: list[str] = []
        """Of the answer that was used: what was fixed in it instead of a re-ask, and its task refusals."""

    def conversation(self, messages: Sequence[BaseMessage]) -> Conversation[BaseModel]:
        """Ask, then re-ask until an answer validates or the attempts are spent.

        An answer cut at `max_tokens` is first salvaged (`salvage`). If that fails, the re-ask starts
        from the original messages without the cut-off answer, whose repetition is usually what ran
        long, asks for brevity (`reask_cut_off.md`) and sends the `brief_schema`, whose tighter caps
        grammar-constrained servers enforce. Any other unusable answer is shown back with the error
        (`reask_invalid.md`).
        """
        history, error, runnable, schema = list(messages), "", self.runnable, self.schema
        for _ in range(self.attempts):
            sent = yield Request(runnable, history, self.model_name, self.max_tokens, schema)
            reply = cut_off_reply(sent) if isinstance(sent, openai.OpenAIError) else sent
            self.usage.append(usage_of(reply))
            cut_off = reply.response_metadata.get("finish_reason") == "length"
            try:
                if cut_off:
                    return self._used(salvage(raw_answer(reply), self.schema_cls, self.checks))
                return self._used(parse_answer(raw_answer(reply), self.schema_cls, self.checks))
            except ValueError as exc:  # pydantic's ValidationError is a ValueError
                error = f"the answer was cut off at {self.max_tokens} tokens ({exc})" if cut_off else str(exc)
            if cut_off:
                runnable, schema = self.brief_runnable, self.brief_answer_schema
                history = [*messages, HumanMessage(content=reask("reask_cut_off", max_tokens=self.max_tokens))]
            else:
                history = [
                    *history,
                    AIMessage(content=raw_answer(reply)),
                    HumanMessage(content=reask("reask_invalid", error=error)),
                ]
        raise AgentFailure(f"no valid {self.schema_cls.__name__} after {self.attempts} attempts: {error}")

    @cached_property
    def brief_answer_schema(self) -> dict[str, Any]:
        return brief_schema(self.schema)

    @cached_property
    def brief_runnable(self) -> Runnable:
        """The same request with the `brief_schema`: for the re-ask after a cut-off."""
        return constrained(
            self.model, self.brief_answer_schema, self.schema_cls.__name__, self.mode, strict=self.strict
        )

    def _used(self, answer: BaseModel) -> BaseModel:
        if isinstance(answer, AgentAnswer):
            self.repairs, self.refusals = answer.repairs, answer.refusals
        return answer


def cut_off_reply(exc: openai.OpenAIError) -> AIMessage:
    """An answer cut at `max_tokens` is a malformed answer (re-asked); other errors end the agent.

    The openai client has already retried timeouts, 429 and 5xx with backoff by then.
    """
    if not isinstance(exc, openai.LengthFinishReasonError):
        raise server_failure(exc) from exc
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


CONNECTION_LOST: dict[type[BaseException], str] = {
    ConnectionRefusedError: "connection refused",
    ConnectionResetError: "connection reset",
}


def server_failure(exc: openai.OpenAIError) -> Exception:
    """The error for a request the client gave up on: named by what happened, with the URL.

    The aiohttp client reports a refused connection as "Request timed out", so the cause chain is
    read. A lost connection to an embedded server of this process that has died raises
    `EmbeddedServerDied`, which ends the run rather than the sample: every later call would fail.
    """
    if isinstance(exc, openai.APIConnectionError):  # timeouts included
        url = str(exc.request.url)
        try:
            body = exc.request.content
        except RuntimeError:  # httpx's RequestNotRead: a streamed body
            body = b""
        if (died := died_at(url, body)) is not None:
            return died
        cause: BaseException | None = exc
        for _ in range(10):  # the chain is short (openai, httpx, aiohttp, OSError); never follow a cycle
            if cause is None:
                break
            if (what := CONNECTION_LOST.get(type(cause))) is not None:
                return AgentFailure(f"model server failed after retries: {what} by {url}")
            cause = cause.__cause__ or cause.__context__
    return AgentFailure(f"model server failed after retries: {type(exc).__name__}: {exc}")
