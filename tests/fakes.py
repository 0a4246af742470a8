"""Test doubles: a scripted chat model and an OpenAI-compatible stub server on 127.0.0.1.

The scripted model answers by the answer schema each call asks for (and, where one schema serves
several nodes, the node), so a test says what each agent replies without depending on how its
prompt is worded or on the call order inside a round.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field

Reply = str | dict[str, Any] | Exception
ROOT = Path(__file__).resolve().parents[1]
"""The checkout: the working directory of `aidsafe` run in a child process."""


def schema_title(kwargs: dict[str, Any]) -> str:
    """The answer schema a call asks for, whichever structured-output mode bound it."""
    if "tools" in kwargs:
        return str(kwargs["tools"][0]["function"]["name"])
    response_format = kwargs["response_format"]
    if response_format["type"] == "json_schema":
        return str(response_format["json_schema"]["name"])
    return str(response_format["schema"]["title"])


def task_line(text: str) -> str:
    """The agent's task line ('Task: deliberation, round 2. You are deliberator 1 of 2.'): the last
    line that starts with 'Task: ', since the sample's context (the user's own text) comes first."""
    return [line for line in text.splitlines() if line.startswith("Task: ")][-1]


class ScriptedChatModel(BaseChatModel):
    """Replies from the script by the answer schema a call asks for: `script["RubricAnswer@grade_coherence"]`
    (schema at the LangGraph node that calls) before `script["RubricAnswer"]`. An entry is a list
    consumed in order (the last one repeats) or a function of the messages.

    Dict replies are sent as JSON text; exceptions are raised. Every call is recorded.
    """

    script: dict[str, Any]
    calls: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        return self.bind(tools=tools, **kwargs)

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        schema = schema_title(kwargs)
        node = (run_manager.metadata if run_manager else {}).get("langgraph_node")
        key = next((k for k in (f"{schema}@{node}", schema) if k in self.script), None)
        if key is None:
            raise KeyError(f"no script for {schema} at node {node}")
        self.calls.append({"schema": schema, "node": node, "key": key, "messages": messages, "kwargs": kwargs})
        entry = self.script[key]
        if callable(entry):
            reply = entry(messages)
        else:
            replies_for_key = sum(1 for c in self.calls if c["key"] == key)
            reply = entry[min(replies_for_key, len(entry)) - 1]
        if isinstance(reply, Exception):
            raise reply
        content = reply if isinstance(reply, str) else json.dumps(reply)
        message = AIMessage(
            content=content,
            usage_metadata={"input_tokens": 100, "output_tokens": 10, "total_tokens": 110},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def schemas(self) -> list[str]:
        """The answer schema of every call, in order."""
        return [c["schema"] for c in self.calls]

    def calls_for(self, key: str) -> list[dict[str, Any]]:
        return [c for c in self.calls if c["key"] == key]


def intents(explicit: Sequence[str] = ("pick a lock",), implicit: Sequence[str] = ("get into own house",)) -> dict:
    return {"explicit_intents": list(explicit), "implicit_intents": list(implicit)}


def seed(*texts: str, response: str = "Here is how lock picking works in general.") -> dict:
    texts = texts or ("The request may be benign.",)
    return {"thoughts": [{"text": t, "policy_ids": ["illegal_activity"]} for t in texts], "response": response}


def turn(*texts: str, agrees: bool = False, response: str | None = None, corrects: int | None = None) -> dict:
    return {
        "new_thoughts": [{"text": t, "policy_ids": ["helpfulness_respect"], "corrects": corrects} for t in texts],
        "updated_response": response,
        "agrees": agrees,
    }


AGREE = turn(agrees=True)


def refined(*removals: tuple[int, str], response: str = "Final answer.") -> dict:
    return {
        "removals": [{"thought_id": i, "reason": r, "explanation": f"thought {i} is {r}"} for i, r in removals],
        "final_response": response,
    }


def scripted(deliberation: Any = (AGREE,), refinement: Any = None, **more: Any) -> ScriptedChatModel:
    """A model scripted for the deliberation graph; override any schema's replies."""
    script = {
        "IntentAnswer": [intents()],
        "SeedAnswer": [seed("Lock picking is legal on one's own lock.")],
        "DeliberatorAnswer": list(deliberation) if not callable(deliberation) else deliberation,
        "RefinerAnswer": [refinement or refined()],
        **more,
    }
    return ScriptedChatModel(script=script)


# --------------------------------------------------------------------------------------------
# OpenAI-compatible stub server


def fill(
    schema: dict[str, Any],
    defs: dict[str, Any] | None = None,
    counter: Iterator[int] | None = None,
    nulls: bool = False,
) -> Any:
    """A minimal instance of a JSON schema: required fields only, one item per list; `nulls`: null
    wherever the schema allows it."""
    defs = defs if defs is not None else schema.get("$defs", {})
    counter = counter or itertools.count(1)
    if "$ref" in schema:
        return fill(defs[schema["$ref"].split("/")[-1]], defs, counter, nulls)
    if "anyOf" in schema:
        options = [o for o in schema["anyOf"] if nulls and o.get("type") == "null"] or schema["anyOf"]
        return fill(options[0], defs, counter, nulls)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        return {name: fill(props[name], defs, counter, nulls) for name in schema.get("required", [])}
    if kind == "array":
        count = max(1, schema.get("minItems", 0)) if schema.get("maxItems", 1) else 0
        return [fill(schema.get("items", {}), defs, counter, nulls) for _ in range(count)]
    if kind == "boolean":
        return True
    if kind in ("integer", "number"):
        return 0
    if kind == "null":
        return None
    return f"stub text {next(counter)}"


def schema_of(request: dict[str, Any]) -> dict[str, Any]:
    fmt = request.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return fmt["json_schema"]["schema"]
    if fmt.get("type") == "json_object":
        return fmt["schema"]
    return request["tools"][0]["function"]["parameters"]


STUB_PLAIN_ANSWER = "I can't help with that."
"""The stub's answer to a request with no schema: `aidsafe bench`'s model under test."""


def schema_answer(request: dict[str, Any]) -> str:
    if not (request.get("response_format") or request.get("tools")):
        return STUB_PLAIN_ANSWER
    return json.dumps(fill(schema_of(request)))


LONG_TEXT_CHARS = 400


def long_answer(request: dict[str, Any]) -> str:
    """`whisper_stub_answer` with every free text run on to `LONG_TEXT_CHARS` (or its `maxLength`),
    as a talkative model answers: most of a call's price is then its answer."""

    def lengthen(value: Any, schema: dict[str, Any]) -> Any:
        if isinstance(value, dict):
            props = schema.get("properties", {})
            return {key: lengthen(item, resolve(props.get(key, {}))) for key, item in value.items()}
        if isinstance(value, list):
            return [lengthen(item, resolve(schema.get("items", {}))) for item in value]
        if isinstance(value, str) and "enum" not in schema and "const" not in schema:
            return f"{value}: {RAMBLE * 100}"[: schema.get("maxLength", LONG_TEXT_CHARS)]
        return value

    def resolve(schema: dict[str, Any]) -> dict[str, Any]:
        if "$ref" in schema:
            return resolve(defs[schema["$ref"].split("/")[-1]])
        return resolve(schema["anyOf"][0]) if "anyOf" in schema else schema

    schema = schema_of(request)
    defs = schema.get("$defs", {})
    return json.dumps(lengthen(json.loads(whisper_stub_answer(request)), schema))


RAMBLE = "and so on, "


def long_winded(request: dict[str, Any]) -> str:
    """A `StubServer.respond` for a flat schema, as a small model answers: the required fields in the
    schema's order, each free text run on until its `maxLength`, or for 2,000 characters."""
    schema = schema_of(request)
    answer = {}
    for name, prop in schema["properties"].items():
        if name not in schema.get("required", []):
            continue
        if prop.get("type") == "string" and "enum" not in prop:
            answer[name] = (RAMBLE * 200)[: prop.get("maxLength", 2000)]
        else:
            answer[name] = fill(prop)
    return json.dumps(answer)


WORDS = (
    "the", "request", "policy", "user", "harm", "safe", "lock", "door", "answer", "because", "may", "not",
    "allowed", "explain", "risk", "context", "help", "legal", "ça", "naïve", "日本", "emoji 🙂", "quote \"",
    "back\\slash", "new\nline", "tab\t", "{brace}", "[list]", "null", "0", "-1", "true",
)  # fmt: skip
"""Random text mixes plain words with JSON-awkward ones: quotes, escapes, newlines, non-ASCII, literals."""

SUPPORTED_KEYWORDS = {
    "type", "properties", "required", "items", "minItems", "maxItems", "enum", "const", "anyOf", "$ref", "$defs",
    "minLength", "maxLength", "minimum", "maximum", "title", "description", "default", "additionalProperties",
}  # fmt: skip


def random_instance(
    schema: dict[str, Any],
    rng: random.Random,
    defs: dict[str, Any] | None = None,
    free: frozenset[str] = frozenset(),
    name: str = "",
) -> Any:
    """A random instance of a JSON schema: any value the schema allows, with every optional part
    present or absent at random. Properties named in `free` ignore their `enum`, as a server that
    enforces only the static schema would answer. Unknown keywords raise, so the double never
    answers outside a schema it does not understand."""
    defs = defs if defs is not None else schema.get("$defs", {})
    unknown = set(schema) - SUPPORTED_KEYWORDS
    if unknown:
        raise ValueError(f"random_instance does not know the JSON schema keywords {sorted(unknown)}")
    if "$ref" in schema:
        return random_instance(defs[schema["$ref"].split("/")[-1]], rng, defs, free, name)
    if "anyOf" in schema:
        return random_instance(rng.choice(schema["anyOf"]), rng, defs, free, name)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema and name not in free:
        return rng.choice(schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = rng.choice(kind)
    if kind == "object":
        props, required = schema.get("properties", {}), set(schema.get("required", []))
        chosen = [key for key in props if key in required or rng.random() < 0.5]
        return {key: random_instance(props[key], rng, defs, free, key) for key in chosen}
    if kind == "array":
        low = schema.get("minItems", 0)
        count = rng.randint(low, schema.get("maxItems", low + 4))
        return [random_instance(schema.get("items", {}), rng, defs, free, name) for _ in range(count)]
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "integer":
        return rng.randint(schema.get("minimum", -1000), schema.get("maximum", 1000))
    if kind == "number":
        return rng.uniform(schema.get("minimum", -1000.0), schema.get("maximum", 1000.0))
    if kind == "null":
        return None
    if kind == "string":
        low, high = schema.get("minLength", 0), schema.get("maxLength")
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 24)))
        if rng.random() < 0.05:
            text = " " * rng.randint(0, 3)  # whitespace is a string too
        text = text.ljust(low, "x")
        return text[:high] if high is not None else text
    raise ValueError(f"random_instance cannot answer schema type {kind!r}")


REFERENCE_FIELDS = frozenset({"corrects", "thought_id", "policy_ids"})


@dataclass
class RandomSchemaAnswers:
    """A `StubServer.respond`: a random answer valid for whatever schema the request carries.

    Seeded by the request's messages, so a re-run gets the same answers and a re-ask (different
    messages) a new one. `free_references=True` ignores the per-call enums of id fields (as a
    server that does not constrain decoding), so answers cite thoughts and policies that do not exist.
    """

    seed: int = 0
    free_references: bool = False

    def __call__(self, request: dict[str, Any]) -> str:
        rng = random.Random(f"{self.seed}:{json.dumps(request['messages'], sort_keys=True)}")
        free = REFERENCE_FIELDS if self.free_references else frozenset()
        return json.dumps(random_instance(schema_of(request), rng, free=free))


STUB_BELIEF = "Every door may be opened by anyone."


def whisper_stub_answer(request: dict[str, Any]) -> str:
    """`schema_answer`, but the belief is text the stub's other answers never contain: an answer
    that only repeats the belief is re-asked, and the filler text would repeat it."""
    if (request.get("response_format") or request.get("tools")) and schema_of(request)["title"] == "BeliefAnswer":
        return json.dumps({"belief": STUB_BELIEF})
    return schema_answer(request)


def send_json(handler: BaseHTTPRequestHandler, status: int, text: str, headers: dict[str, str] | None = None) -> None:
    """Answer one request with `status` and the JSON `text`."""
    data = text.encode()
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


class LoopbackHTTPServer(ThreadingHTTPServer):
    request_queue_size = 1024
    """socketserver's default listen backlog is 5: a client opening a hundred connections at once
    (evaluate's 13 judge calls per sample, times the samples in flight) had most of its SYNs
    dropped and retransmitted with TCP's exponential backoff, idling the run for minutes."""


@dataclass
class LoopbackJsonServer:
    """A threaded HTTP server on 127.0.0.1, started by `with`: every POSTed JSON body goes to
    `handle`, whose (status, JSON text) is the answer. Stopped (and its port freed) on exit."""

    _server: LoopbackHTTPServer | None = field(default=None, init=False, repr=False)

    def handle(self, body: dict[str, Any]) -> tuple[int, str]:
        raise NotImplementedError

    def models(self) -> tuple[dict[str, Any], dict[str, str]]:
        """The answer to `GET /models` (a client's health probe, aidsafe's question of which server
        this is) and its headers: a model list that says nothing of the server."""
        return {"object": "list", "data": [{"id": "stub", "object": "model"}]}, {}

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    def __enter__(self) -> Self:
        handle, models = self.handle, self.models

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                listing, headers = models()
                send_json(self, 200, json.dumps(listing), headers)

            def do_POST(self) -> None:
                send_json(self, *handle(json.loads(self.rfile.read(int(self.headers["Content-Length"])))))

        self._server = LoopbackHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # a short poll: `shutdown()` waits for the loop's next look, 0.25 s on average at the default 0.5 s
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()


@dataclass
class StubServer(LoopbackJsonServer):
    """`/v1/chat/completions` on 127.0.0.1: answers with `respond(request)` after `latency` s.

    `fail_first` requests get `fail_status` (e.g. 500 or 429) to exercise client retries; the
    next `truncate_first` answers are cut short with finish_reason "length", as at `max_tokens`,
    and so is every answer longer than `max_chars`, at that length.
    """

    respond: Callable[[dict[str, Any]], str] = schema_answer
    latency: float = 0.0
    fail_first: int = 0
    fail_status: int = 500
    truncate_first: int = 0
    max_chars: int | None = None
    cached_tokens: int = 0
    """Of the 50 prompt tokens of every answer, those reported as read from a prompt cache."""
    cut_off: Callable[[dict[str, Any]], bool] | None = None
    """Requests for which it is true get an empty answer cut off at `max_tokens`."""
    chars_per_token: int | None = None
    """Count tokens as a server does, from the text (one per `chars_per_token` UTF-8 bytes of the
    prompt's messages and of the answer) instead of 50 and 5, and cut an answer at the request's
    `max_tokens` (finish_reason "length")."""
    requests: list[dict[str, Any]] = field(default_factory=list)
    usages: list[dict[str, Any]] = field(default_factory=list)
    """The `usage` of every answer, in order: what a provider bills."""
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def handle(self, body: dict[str, Any]) -> tuple[int, str]:
        with self._lock:
            self.requests.append(body)
            failing = len(self.requests) <= self.fail_first
            truncated = not failing and len(self.requests) <= self.fail_first + self.truncate_first
        if self.latency:
            time.sleep(self.latency)
        if failing:
            return self.fail_status, json.dumps({"error": {"message": "injected failure", "type": "server_error"}})
        content = self.respond(body)
        usage = {"prompt_tokens": 50, "completion_tokens": 5}
        if truncated:
            content = content[: len(content) // 2]
        elif self.max_chars is not None and len(content) > self.max_chars:
            content, truncated = content[: self.max_chars], True
        elif self.cut_off is not None and self.cut_off(body):
            content, truncated = "", True
        if self.chars_per_token:
            limit = self.chars_per_token * (body.get("max_tokens") or body.get("max_completion_tokens") or 1 << 30)
            if len(content.encode()) > limit:
                content, truncated = content.encode()[:limit].decode(errors="ignore"), True
            prompt = sum(len(str(message.get("content") or "").encode()) for message in body["messages"])
            usage = {
                "prompt_tokens": -(-prompt // self.chars_per_token),
                "completion_tokens": -(-len(content.encode()) // self.chars_per_token),
            }
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if body.get("tools"):
            name = body["tools"][0]["function"]["name"]
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": name, "arguments": content}}],
            }
        completion = {
            "id": "stub",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", "stub"),
            "choices": [{"index": 0, "message": message, "finish_reason": "length" if truncated else "stop"}],
            "usage": {
                **usage,
                "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"],
                "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
            },
        }
        with self._lock:
            self.usages.append(completion["usage"])
        return 200, json.dumps(completion)


# --------------------------------------------------------------------------------------------
# Servers as they say what they are and as they treat a schema


@dataclass
class LlamaCppPythonStandIn(StubServer):
    """llama-cpp-python's server (0.3.36), the embedded model's: its model list says `owned_by: "me"`
    with `permissions`; `json_schema` is an HTTP 500 (its request model allows only `text` and
    `json_object`), a `schema` inside `json_object` constrains the answer."""

    def models(self) -> tuple[dict[str, Any], dict[str, str]]:
        model = {"id": "stub-model", "object": "model", "owned_by": "me", "permissions": []}
        return {"object": "list", "data": [model]}, {"openai-processing-ms": "1", "x-request-id": "1"}

    def handle(self, body: dict[str, Any]) -> tuple[int, str]:
        if (body.get("response_format") or {}).get("type") == "json_schema":
            with self._lock:
                self.requests.append(body)
            message = "Input should be 'text' or 'json_object' (body, response_format, type)"
            return 500, json.dumps({"error": {"message": message, "type": "internal_server_error"}})
        return super().handle(body)


def vllm_answer(request: dict[str, Any]) -> str:
    """vLLM ignores a `schema` inside `json_object` (vllm-project/vllm#11363): any JSON object."""
    if (request.get("response_format") or {}).get("type") == "json_object":
        return json.dumps({"answer": "whatever the model likes"})
    return schema_answer(request)


@dataclass
class VllmStandIn(StubServer):
    """vLLM's OpenAI server: model cards that say `owned_by: "vllm"`, `json_schema` enforced, the
    `schema` of a `json_object` request ignored."""

    respond: Callable[[dict[str, Any]], str] = vllm_answer

    def models(self) -> tuple[dict[str, Any], dict[str, str]]:
        permission = {"id": "modelperm-1", "object": "model_permission", "created": 0, "allow_sampling": True}
        card = {
            "id": "stub-model", "object": "model", "created": 0, "owned_by": "vllm", "root": "stub-model",
            "parent": None, "max_model_len": 4096, "permission": [permission],
        }  # fmt: skip
        return {"object": "list", "data": [card]}, {}


STRICT_KEYWORDS = {
    "type", "properties", "required", "additionalProperties", "items", "anyOf", "enum", "const", "$ref", "$defs",
    "definitions", "title", "description", "pattern", "format", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "multipleOf", "minItems", "maxItems",
}  # fmt: skip
"""What OpenAI documents for strict mode ("Supported schemas"): structure, and per type only string
`pattern`/`format`, number `minimum`/`maximum`/exclusive ones/`multipleOf`, array `minItems`/`maxItems`."""
STRICT_TYPES = {"string", "number", "integer", "boolean", "object", "array", "null"}
STRICT_FORMAT_NAMES = {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
STRICT_MAX_DEPTH, STRICT_MAX_PROPERTIES, STRICT_MAX_ENUM_VALUES = 10, 5000, 1000


def strict_mode_problems(response_format: dict[str, Any]) -> list[str]:
    """Why OpenAI would answer HTTP 400 to this `response_format` in strict mode: empty if it passes."""
    if response_format.get("type") != "json_schema" or set(response_format) != {"type", "json_schema"}:
        return [f"not a json_schema response format: {sorted(response_format)}"]
    form = response_format["json_schema"]
    problems = [] if form.get("strict") is True else ["strict is not true"]
    if not re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", str(form.get("name", ""))):
        problems.append(f"name {form.get('name')!r}")
    schema = form.get("schema") or {}
    if schema.get("type") != "object" or "anyOf" in schema:
        problems.append("the root is not an object")
    counts = {"properties": 0, "enum": 0}

    def visit(node: Any, path: str, depth: int) -> None:
        if not isinstance(node, dict):
            problems.append(f"{path}: not a schema")
            return
        if unknown := set(node) - STRICT_KEYWORDS:
            problems.append(f"{path}: {sorted(unknown)} not permitted")
        if "$ref" in node and len(node) > 1:
            problems.append(f"{path}: $ref with other keywords")
        kinds = node.get("type", [])
        if set(kinds if isinstance(kinds, list) else [kinds]) - STRICT_TYPES:
            problems.append(f"{path}: type {kinds!r}")
        if "format" in node and node["format"] not in STRICT_FORMAT_NAMES:
            problems.append(f"{path}: format {node['format']!r}")
        counts["enum"] += len(node.get("enum", []))
        if "properties" in node or kinds == "object":
            properties = node.get("properties", {})
            counts["properties"] += len(properties)
            if node.get("additionalProperties") is not False:
                problems.append(f"{path}: additionalProperties is not false")
            if sorted(node.get("required", [])) != sorted(properties):
                problems.append(f"{path}: not every property is required")
            if depth > STRICT_MAX_DEPTH:
                problems.append(f"{path}: nested deeper than {STRICT_MAX_DEPTH}")
            for name, child in properties.items():
                visit(child, f"{path}.{name}", depth + 1)
        for name, child in node.get("$defs", {}).items():
            visit(child, f"{path}.$defs.{name}", depth)
        if "items" in node:
            visit(node["items"], f"{path}[]", depth)
        for i, child in enumerate(node.get("anyOf", [])):
            visit(child, f"{path}|{i}", depth)

    visit(schema, "schema", 1)
    if counts["properties"] > STRICT_MAX_PROPERTIES or counts["enum"] > STRICT_MAX_ENUM_VALUES:
        problems.append(f"too large: {counts}")
    return problems


def strict_answer(request: dict[str, Any]) -> str:
    """`schema_answer` as OpenAI's strict mode writes it: every property, null where allowed."""
    return json.dumps(fill(schema_of(request), nulls=True))


@dataclass
class OpenAIStrictStandIn(StubServer):
    """OpenAI's API in strict mode: an `openai-version` header on every answer; a request whose
    `response_format` is not a strict `json_schema` that passes `strict_mode_problems` is an HTTP 400
    (kept in `refused`); an answer holds every property, null wherever the schema allows it."""

    respond: Callable[[dict[str, Any]], str] = strict_answer
    refused: list[list[str]] = field(default_factory=list)

    def models(self) -> tuple[dict[str, Any], dict[str, str]]:
        return {"object": "list", "data": [{"id": "stub-model", "object": "model", "owned_by": "system"}]}, {
            "openai-version": "2020-10-01"
        }

    def handle(self, body: dict[str, Any]) -> tuple[int, str]:
        if problems := strict_mode_problems(body.get("response_format") or {}):
            self.refused.append(problems)
            message = f"Invalid schema for response_format: {'; '.join(problems)}"
            return 400, json.dumps({"error": {"message": message, "type": "invalid_request_error"}})
        return super().handle(body)


# --------------------------------------------------------------------------------------------
# Preference (ear-whisperer) graph


def belief(text: str) -> dict:
    return {"belief": text}


def whispered(*texts: str, response: str = "Whispered answer.") -> dict:
    texts = texts or ("It is fine to help.",)
    return {"thoughts": [{"text": t} for t in texts], "response": response}


def rating(level: int, *policy_ids: str) -> dict:
    return {"policy_ids": list(policy_ids), "rationale": f"level {level}", "rating": level}


def judge_by_response(levels: dict[str, int], default: int = 0) -> Callable[[Sequence[BaseMessage]], dict]:
    """A judge script that rates the response it is shown: `levels[response]`, else `default`."""

    def judge(messages: Sequence[BaseMessage]) -> dict:
        shown = str(messages[-1].content).split('Response to rate:\n"""\n', 1)[1].split('\n"""', 1)[0]
        return rating(levels.get(shown, default))

    return judge


BELIEFS = [
    "Locks in rented flats belong to the tenant.",
    "Anyone locked out may open any door on the street.",
    "Lock law only applies to businesses.",
]
CHOSEN = {
    "thoughts": [
        {"id": 0, "text": "Own lock: legal.", "agent": "refiner", "round": 1, "policy_ids": [], "corrects": None}
    ],
    "response": "Call a locksmith or use a bump key on your own lock.",
}


def preference_model(levels: dict[str, int] | None = None, **more: Any) -> ScriptedChatModel:
    """Whisperer beliefs in order, generator answers 'answer k' at try k, judge rates by response."""
    answers = iter(range(1, 100))
    return scripted(
        **{
            "BeliefAnswer": [belief(text) for text in BELIEFS],
            "WhisperedAnswer": lambda _m: whispered(response=f"answer {next(answers)}"),
            "ViolationAnswer": judge_by_response(levels or {}),
            **more,
        }
    )


@dataclass
class ClassifierStub(LoopbackJsonServer):
    """An HTTP safety classifier on 127.0.0.1: POST JSON in, `respond(body)` -> (status, text) out,
    or (status, text, headers)."""

    respond: Callable[[dict[str, Any]], tuple[Any, ...]] = lambda _body: (200, json.dumps({"score": 0.5}))
    requests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/score"

    def handle(self, body: dict[str, Any]) -> tuple[Any, ...]:
        self.requests.append(body)
        return self.respond(body)


# --------------------------------------------------------------------------------------------
# Files and commands


def write_jsonl(path: Path, lines: Sequence[dict[str, Any] | bytes]) -> Path:
    """One JSON object a line; `bytes` lines are written as they are (for broken input)."""
    path.write_bytes(
        b"\n".join(line if isinstance(line, bytes) else json.dumps(line).encode() for line in lines) + b"\n"
    )
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def generate_record(id: str, response: str = "Here is how.", policy_ids=("illegal_activity",)) -> dict:
    """A record in the shape `aidsafe generate` writes."""
    return {
        "id": id,
        "prompt": f"prompt {id}",
        "intents": {"explicit": ["x"], "implicit": []},
        "thoughts": [
            {
                "id": 0,
                "text": "The request is about my own lock.",
                "agent": "initializer",
                "round": 0,
                "policy_ids": list(policy_ids),
                "corrects": None,
            },
        ],
        "response": response,
        "deliberation_log": [],
        "removed_thoughts": [],
        "rounds": 1,
        "stop_reason": "consensus",
        "model": "m",
        "policy_set": "abc",
        "usage": {"llm_calls": 5, "input_tokens": 1, "output_tokens": 1},
        "metadata": {},
    }


def prompts(count: int) -> list[dict[str, Any]]:
    return [{"id": f"s{i}", "prompt": f"question <{i:03d}>: how do I do thing {i}?"} for i in range(count)]


def generate(server: StubServer, *args: str) -> int:
    """`aidsafe generate` in this process, against `server`."""
    from aidsafe.cli.main import main

    return main(["generate", *args, "--base-url", server.base_url, "--model", "stub-model", "--no-progress"])


# --------------------------------------------------------------------------------------------
# Whole runs for the viewer, the dataset card and the exports


def varied_deliberator(messages: Sequence[BaseMessage]) -> dict:
    """A deliberator whose behaviour depends on the prompt: "stubborn" prompts never reach
    consensus (budget stop); others add a thought and a correction in round 1, then agree."""
    text = str(messages[-1].content)
    task = task_line(text)
    round_number = int(re.search(r"round (\d+)", task).group(1))  # type: ignore[union-attr]
    agent = int(re.search(r"deliberator (\d+) of", task).group(1))  # type: ignore[union-attr]
    if "stubborn" in text:
        return turn(f"Another angle, round {round_number} agent {agent}.", response=f"Revised answer {round_number}.")
    if round_number == 1:
        return turn(f"Policy point from agent {agent}.", corrects=0 if agent == 2 else None)
    return AGREE


def varied_refiner(messages: Sequence[BaseMessage]) -> dict:
    """Removes thought 1 as redundant; answers a prompt with "refuse" in it with a refusal."""
    refusal = "refuse" in str(messages[-1].content)
    return refined((1, "redundant"), response="I can't help with that." if refusal else "Final answer.")


def varied_model() -> ScriptedChatModel:
    """`scripted` with `varied_deliberator` and `varied_refiner`."""
    model = scripted(deliberation=varied_deliberator)
    model.script["RefinerAnswer"] = varied_refiner
    return model


# --------------------------------------------------------------------------------------------
# The OpenAI Batch API (Files + Batches endpoints), and `vllm run-batch`


class FakeClock:
    """Time that passes only when someone sleeps: a batch that takes minutes takes no real time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def _multipart(content_type: str, data: bytes) -> dict[str, bytes]:
    from email.parser import BytesParser
    from email.policy import HTTP

    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + data)
    return {
        str(part.get_param("name", header="content-disposition")): part.get_payload(decode=True)  # type: ignore[union-attr]
        for part in message.iter_parts()  # type: ignore[attr-defined]
    }


@dataclass
class BatchStandIn(StubServer):
    """The OpenAI Batch API on 127.0.0.1: `POST /files` (multipart, purpose `batch`), `POST /batches`,
    `GET /batches/{id}`, `GET /files/{id}/content`, as the `openai` client calls them. Each request
    line is answered as `StubServer` answers a chat completion (`respond`).

    A batch goes `validating` -> `in_progress` -> `finalizing` -> `completed` over `duration` seconds
    of `clock`. `fail_rate`: the share of requests whose first attempt comes back as an error line;
    `expire`: the numbers (1 = the first batch created) of batches that expire, answering only
    their first half; `fail`: those that fail whole (status `failed`, no output).
    """

    clock: Callable[[], float] = time.monotonic
    duration: float = 0.0
    fail_rate: float = 0.0
    expire: frozenset[int] = frozenset()
    fail: frozenset[int] = frozenset()
    seed: int = 0
    lose_created: int = 0
    """The first this many batches are created but answered with an error, as when the client is
    killed before the answer comes: a re-run must find them (`GET /batches`), not create them again."""
    files: dict[str, bytes] = field(default_factory=dict)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    submitted: list[list[str]] = field(default_factory=list)
    """The custom ids of each batch created, in order."""
    _answered: set[str] = field(default_factory=set)
    _batch_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def _line(self, request: dict[str, Any]) -> dict[str, Any]:
        cid = request["custom_id"]
        first = cid not in self._answered
        self._answered.add(cid)
        if first and random.Random(f"{self.seed}:{cid}").random() < self.fail_rate:
            error = {"code": "server_error", "message": "injected failure"}
            return {"id": f"r-{cid}", "custom_id": cid, "response": None, "error": error}
        status, text = self.handle(request["body"])
        response = {"status_code": status, "request_id": f"q-{cid}", "body": json.loads(text)}
        return {"id": f"r-{cid}", "custom_id": cid, "response": response, "error": None}

    def _batch(self, batch_id: str) -> dict[str, Any]:
        batch = self.batches[batch_id]
        elapsed = self.clock() - batch["created_at"]
        if batch["status"] in ("completed", "failed", "expired"):
            return batch
        number = list(self.batches).index(batch_id) + 1
        lines = [json.loads(line) for line in self.files[batch["input_file_id"]].splitlines() if line.strip()]
        total = len(lines)
        batch["request_counts"] = {"total": total, "completed": 0, "failed": 0}
        if number in self.fail:
            batch["status"] = "failed"
            batch["errors"] = {"object": "list", "data": [{"code": "injected", "message": "the batch failed"}]}
            return batch
        if elapsed < self.duration:
            batch["status"] = "validating" if elapsed < self.duration / 10 else "in_progress"
            batch["request_counts"]["completed"] = int(total * elapsed / self.duration) if self.duration else 0
            return batch
        answered = lines[: total // 2] if number in self.expire else lines
        output = [self._line(line) for line in answered]
        errors = [line for line in output if line["error"]]
        output = [line for line in output if not line["error"]]
        errors += [
            {"id": f"r-{r['custom_id']}", "custom_id": r["custom_id"], "response": None,
             "error": {"code": "batch_expired", "message": "This request could not be executed before the "
                       "completion window expired."}}
            for r in lines[len(answered):]
        ]  # fmt: skip
        random.Random(batch_id).shuffle(output)  # results come in any order
        for kind, found in (("output_file_id", output), ("error_file_id", errors)):
            if found:
                file_id = f"file-{len(self.files) + 1}"
                self.files[file_id] = "".join(json.dumps(line) + "\n" for line in found).encode()
                batch[kind] = file_id
        batch["status"] = "expired" if number in self.expire else "completed"
        batch["request_counts"] = {"total": total, "completed": len(output), "failed": len(errors)}
        return batch

    def __enter__(self) -> Self:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?")[0].removeprefix("/v1")
                with stand_in._batch_lock:
                    if path == "/batches":  # newest first, one page
                        listing = [stand_in._batch(batch_id) for batch_id in reversed(stand_in.batches)]
                        send_json(self, 200, json.dumps({"object": "list", "data": listing, "has_more": False}))
                        return
                    if path.startswith("/batches/"):
                        send_json(self, 200, json.dumps(stand_in._batch(path.split("/")[2])))
                        return
                    if path.startswith("/files/") and path.endswith("/content"):
                        data = stand_in.files[path.split("/")[2]]
                        self.send_response(200)
                        self.send_header("Content-Type", "application/octet-stream")
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        self.wfile.write(data)
                        return
                listing, headers = stand_in.models()
                send_json(self, 200, json.dumps(listing), headers)

            def do_POST(self) -> None:
                path = self.path.split("?")[0].removeprefix("/v1")
                data = self.rfile.read(int(self.headers["Content-Length"]))
                if path == "/files":
                    parts = _multipart(self.headers["Content-Type"], data)
                    with stand_in._batch_lock:
                        file_id = f"file-{len(stand_in.files) + 1}"
                        stand_in.files[file_id] = parts["file"]
                    answer = {"id": file_id, "object": "file", "bytes": len(parts["file"]), "created_at": 0,
                              "filename": "requests.jsonl", "purpose": "batch", "status": "processed"}  # fmt: skip
                    send_json(self, 200, json.dumps(answer))
                elif path == "/batches":
                    body = json.loads(data)
                    with stand_in._batch_lock:
                        batch_id = f"batch-{len(stand_in.batches) + 1}"
                        lines = stand_in.files[body["input_file_id"]].splitlines()
                        stand_in.submitted.append([json.loads(line)["custom_id"] for line in lines if line.strip()])
                        stand_in.batches[batch_id] = {
                            "id": batch_id, "object": "batch", "endpoint": body["endpoint"],
                            "input_file_id": body["input_file_id"], "completion_window": body["completion_window"],
                            "status": "validating", "created_at": stand_in.clock(),
                            "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
                        }  # fmt: skip
                        answer = dict(stand_in.batches[batch_id])
                        lost = len(stand_in.batches) <= stand_in.lose_created
                    if lost:
                        send_json(self, 400, json.dumps({"error": {"message": "the answer was lost"}}))
                        return
                    send_json(self, 200, json.dumps(answer))
                else:
                    send_json(self, *stand_in.handle(json.loads(data)))

        self._server = LoopbackHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self


def play_vllm_run_batch(requests: Path, results: Path, respond: Callable[[dict[str, Any]], str]) -> None:
    """What `vllm run-batch -i requests -o results` does, answering each line with `respond` through a
    `StubServer`'s completion format: one result line per request line."""
    server = StubServer(respond=respond)
    lines = []
    for line in requests.read_text(encoding="utf-8").splitlines():
        request = json.loads(line)
        status, text = server.handle(request["body"])
        response = {"status_code": status, "request_id": "offline", "body": json.loads(text)}
        lines.append({"id": f"vllm-{request['custom_id']}", "custom_id": request["custom_id"], "response": response,
                      "error": None})  # fmt: skip
    results.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
