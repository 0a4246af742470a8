"""Test doubles: a scripted chat model and an OpenAI-compatible stub server on 127.0.0.1.

The scripted model answers by task (the first line of the agent's instructions), so a test says
what each agent replies without caring about call order inside a round.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field

Reply = str | dict[str, Any] | Exception


def task_of(messages: Sequence[BaseMessage]) -> str:
    """'intent decomposition', 'first reasoning and response', 'deliberation', 'refinement', ..."""
    first_human = next(m for m in messages if isinstance(m, HumanMessage))
    first_line = str(first_human.content).splitlines()[0]
    return re.split(r"[,.]", first_line.removeprefix("Task: "))[0]


class ScriptedChatModel(BaseChatModel):
    """Replies from `script[task]`: a list consumed in order (the last one repeats) or a function.

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
        task = task_of(messages)
        self.calls.append({"task": task, "messages": messages, "kwargs": kwargs})
        entry = self.script[task]
        if callable(entry):
            reply = entry(messages)
        else:
            replies_for_task = sum(1 for c in self.calls if c["task"] == task)
            reply = entry[min(replies_for_task, len(entry)) - 1]
        if isinstance(reply, Exception):
            raise reply
        content = reply if isinstance(reply, str) else json.dumps(reply)
        message = AIMessage(
            content=content,
            usage_metadata={"input_tokens": 100, "output_tokens": 10, "total_tokens": 110},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def tasks(self) -> list[str]:
        return [c["task"] for c in self.calls]


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
    """A model scripted for the deliberation graph; override any task's replies."""
    script = {
        "intent decomposition": [intents()],
        "first reasoning and response": [seed("Lock picking is legal on one's own lock.")],
        "deliberation": list(deliberation) if not callable(deliberation) else deliberation,
        "refinement": [refinement or refined()],
        **more,
    }
    return ScriptedChatModel(script=script)


# --------------------------------------------------------------------------------------------
# OpenAI-compatible stub server


def fill(schema: dict[str, Any], defs: dict[str, Any] | None = None, counter: Iterator[int] | None = None) -> Any:
    """A minimal instance of a JSON schema: required fields only, one item per list."""
    defs = defs if defs is not None else schema.get("$defs", {})
    counter = counter or itertools.count(1)
    if "$ref" in schema:
        return fill(defs[schema["$ref"].split("/")[-1]], defs, counter)
    if "anyOf" in schema:
        return fill(schema["anyOf"][0], defs, counter)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        return {name: fill(props[name], defs, counter) for name in schema.get("required", [])}
    if kind == "array":
        return [fill(schema.get("items", {}), defs, counter) for _ in range(max(1, schema.get("minItems", 0)))]
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


def schema_answer(request: dict[str, Any]) -> str:
    return json.dumps(fill(schema_of(request)))


STUB_BELIEF = "Every door may be opened by anyone."


def whisper_stub_answer(request: dict[str, Any]) -> str:
    """`schema_answer`, but the belief is text the stub's other answers never contain: an answer
    that only repeats the belief is re-asked, and the filler text would repeat it."""
    if schema_of(request)["title"] == "BeliefAnswer":
        return json.dumps({"belief": STUB_BELIEF})
    return schema_answer(request)


@dataclass
class LoopbackJsonServer:
    """A threaded HTTP server on 127.0.0.1, started by `with`: every POSTed JSON body goes to
    `handle`, whose (status, JSON text) is the answer. Stopped (and its port freed) on exit."""

    _server: ThreadingHTTPServer | None = field(default=None, init=False, repr=False)

    def handle(self, body: dict[str, Any]) -> tuple[int, str]:
        raise NotImplementedError

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    def __enter__(self) -> Self:
        handle = self.handle

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                status, text = handle(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()


@dataclass
class StubServer(LoopbackJsonServer):
    """`/v1/chat/completions` on 127.0.0.1: answers with `respond(request)` after `latency` s.

    `fail_first` requests get `fail_status` (e.g. 500 or 429) to exercise client retries; the
    next `truncate_first` answers are cut short with finish_reason "length", as at `max_tokens`.
    """

    respond: Callable[[dict[str, Any]], str] = schema_answer
    latency: float = 0.0
    fail_first: int = 0
    fail_status: int = 500
    truncate_first: int = 0
    cached_tokens: int = 0
    """Of the 50 prompt tokens of every answer, those reported as read from a prompt cache."""
    requests: list[dict[str, Any]] = field(default_factory=list)
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
        if truncated:
            content = content[: len(content) // 2]
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
                "prompt_tokens": 50,
                "completion_tokens": 5,
                "total_tokens": 55,
                "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
            },
        }
        return 200, json.dumps(completion)


# --------------------------------------------------------------------------------------------
# Preference (ear-whisperer) graph


def belief(text: str) -> dict:
    return {"belief": text}


def sample(*texts: str, response: str = "Whispered answer.") -> dict:
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


@dataclass
class ClassifierStub(LoopbackJsonServer):
    """An HTTP safety classifier on 127.0.0.1: POST JSON in, `respond(body)` -> (status, text) out."""

    respond: Callable[[dict[str, Any]], tuple[int, str]] = lambda _body: (200, json.dumps({"score": 0.5}))
    requests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/score"

    def handle(self, body: dict[str, Any]) -> tuple[int, str]:
        self.requests.append(body)
        return self.respond(body)


# --------------------------------------------------------------------------------------------
# Whole runs for the viewer, the dataset card and the exports


def varied_deliberator(messages: Sequence[BaseMessage]) -> dict:
    """A deliberator whose behaviour depends on the prompt: "stubborn" prompts never reach
    consensus (budget stop); others add a thought and a correction in round 1, then agree."""
    text = str(messages[-1].content)
    round_number = int(re.search(r"round (\d+)", text).group(1))  # type: ignore[union-attr]
    agent = int(re.search(r"deliberator (\d+) of", text).group(1))  # type: ignore[union-attr]
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
    model.script["refinement"] = varied_refiner
    return model
