"""The FastAPI app behind `aidsafe serve`: every graph in `GRAPHS` mounted with `langserve.add_routes`.

Configuration is the server's: its context (the CLI's model flags) is the base of every run, and a
client may only set the fields in `CLIENT_FIELDS` through `config.configurable`, within
`CLIENT_LIMITS`. `base_url`, `judge_base_url` and `scorer_url` stay server-side unless
`allow_client_base_url` is set, because a client that picks a URL can make the server send
requests (prompts, and the model server's API key) to any host; `policy_file` stays server-side
because it names a file on the server. Unknown or server-only fields and values out of bounds get
a 422.
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from langchain_core.runnables import Runnable, RunnableBinding, RunnableConfig
from langserve import add_routes
from pydantic import BaseModel, ConfigDict, Field, create_model
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aidsafe.batch.endpoints import model_server
from aidsafe.batch.inputs import prompt_problem
from aidsafe.graphs import contrast, deliberation, gated, preference
from aidsafe.nodes.context import Context, setting_annotations
from aidsafe.serving.limits import BadBody, BodyTooSlow, parse_json, read_body, timed_protocol
from aidsafe.serving.settings import ServeSettings

log = logging.getLogger(__name__)

URL_FIELDS = frozenset({"base_url", "judge_base_url", "scorer_url"})
"""Hosts the server sends requests to: server-side unless `allow_client_base_url`."""
SERVER_ONLY_FIELDS = URL_FIELDS | {"policy_file"}
CLIENT_FIELDS = frozenset(f.name for f in dataclasses.fields(Context)) - SERVER_ONLY_FIELDS
"""Context fields a client may set per request (model names, rounds, temperature, retries...)."""
CLIENT_LIMITS: dict[str, dict[str, Any]] = {
    "max_rounds": {"le": 10},
    "max_tokens": {"le": 8192},
    "parse_retries": {"le": 5},
    "http_retries": {"le": 10},
    "request_timeout": {"le": 600},
    "whisper_iterations": {"le": 10},
}
"""Caps on what one request may ask for, over each field's valid range (its annotation in
`Context`): the budget fields multiply the model calls a request costs, so a client must not be
able to buy an unbounded number of them."""

OPEN_PATHS = frozenset({"/health"})
"""Routes that need no API key: load balancers and `aidsafe serve` users check liveness there."""


GraphFactory = Callable[[ServeSettings], Runnable]
GRAPHS: list[tuple[str, GraphFactory]] = [
    ("/deliberation", lambda settings: deliberation.build_graph(settings.n_deliberators)),
    ("/gated", lambda settings: gated.build_graph(settings.n_deliberators)),
    ("/preference", lambda settings: preference.build_graph(settings.n_deliberators)),
    ("/contrast", lambda _settings: contrast.build_graph()),
]
"""(path, graph factory): one line per served graph."""


def client_config_model(fields: frozenset[str]) -> type[BaseModel]:
    """The `config` a client may send: `configurable` with only `fields`, all optional, others rejected.

    LangServe validates request configs with the runnable's config schema and fills in defaults,
    which would hide what the client actually sent; with every field defaulting to None the server
    can tell, and merge the client's values over its own.
    """
    hints = setting_annotations(Context)  # the annotations carry the ranges
    configurable: Any = create_model(  # type: ignore[call-overload]
        "AidsafeConfigurable",
        __config__=ConfigDict(extra="forbid"),
        **{
            f.name: (
                hints[f.name] | None,
                Field(None, description=f.metadata.get("description"), **CLIENT_LIMITS.get(f.name, {})),
            )
            for f in dataclasses.fields(Context)
            if f.name in fields
        },
    )
    return create_model("AidsafeConfig", configurable=(configurable | None, None))


class ServedGraph(RunnableBinding):
    """A graph as LangServe serves it: the client config schema, and runs named after the graph.

    LangServe names every root run after the route path; dropping that name keeps the graph's own
    name on the trace, as in Python and Studio. `served` makes a subclass per config model, because
    LangServe re-binds the runnable per request and a copy must keep the schema.
    """

    client_config: ClassVar[type[BaseModel]]

    def config_schema(self, *, include: Sequence[str] | None = None) -> type[BaseModel]:
        return self.client_config

    def _merge_configs(self, *configs: RunnableConfig | None) -> RunnableConfig:
        config = super()._merge_configs(*configs)
        config.pop("run_name", None)
        return config


def served(graph: Runnable, client_config: type[BaseModel]) -> ServedGraph:
    binding = type("ServedGraph", (ServedGraph,), {"__module__": __name__, "client_config": client_config})
    return binding(bound=graph)


def with_server_context(config: dict[str, Any], request: Request) -> dict[str, Any]:
    """LangServe's per-request hook: the server's context under the fields the client sent."""
    sent = {name: value for name, value in (config.get("configurable") or {}).items() if value is not None}
    return {**config, "configurable": {**request.app.state.context, **sent}}


def error_response(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """Every error the app makes itself has FastAPI's shape: `{"detail": "..."}`."""
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


class RequestGuard:
    """ASGI middleware: API key, body size and time, and the request rules LangServe leaves out,
    before any route runs; JSON 500s after.

    The body is read here within the body deadline and up to the size limit, checked as JSON
    (`limits.parse_json`), held to the CLI's prompt rules and the `/batch` cap, then replayed to
    the app, so chunked uploads without a Content-Length are bounded as well as declared ones.
    An exception from a run becomes a JSON 500 here (traceback to the server log only) and the
    connection stays usable.
    """

    def __init__(self, app: ASGIApp, settings: ServeSettings) -> None:
        self.app = app
        self.api_key = settings.api_key.encode() if settings.api_key else None
        self.max_body_bytes = settings.max_body_bytes
        self.settings = settings

    def request_problem(self, path: str, data: Any) -> tuple[int, str] | None:
        """The CLI's prompt rules for every prompt of an invoke/stream/batch body, and the batch cap.
        Shapes LangServe validates itself (a missing `input`, a prompt that is not text) pass."""
        if not isinstance(data, dict):
            return None
        if path.endswith("/batch"):
            inputs = data.get("inputs")
            if not isinstance(inputs, list):
                return 422, "'inputs' must be a list of inputs"
            if len(inputs) > self.settings.max_batch_inputs:
                cap = self.settings.max_batch_inputs
                return 413, f"{len(inputs)} inputs in one /batch request; the server takes at most {cap}"
            named = [(f"inputs.{index}", item) for index, item in enumerate(inputs)]
        else:
            named = [("input", data.get("input"))]
        for where, item in named:
            prompt = item.get("prompt") if isinstance(item, dict) else None
            if isinstance(prompt, str) and (problem := prompt_problem(prompt, self.settings.max_prompt_chars)):
                return 422, f"{where}.prompt: {problem}"
        return None

    def authorized(self, headers: Headers) -> bool:
        assert self.api_key is not None
        scheme, _, token = headers.get("authorization", "").partition(" ")
        offered = [token.strip()] if scheme.lower() == "bearer" else []
        offered.append(headers.get("x-api-key", ""))
        # compare every offer, in constant time, so timing tells nothing about the key
        return any([hmac.compare_digest(candidate.encode(), self.api_key) for candidate in offered])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if self.api_key and scope["path"] not in OPEN_PATHS and not self.authorized(headers):
            detail = "missing or wrong API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
            await error_response(401, detail, {"WWW-Authenticate": "Bearer"})(scope, receive, send)
            return
        too_large = error_response(413, f"request body over the server's limit of {self.max_body_bytes} bytes")
        declared = headers.get("content-length", "0")
        if not declared.isdigit():
            await error_response(400, "invalid Content-Length header")(scope, receive, send)
            return
        if int(declared) > self.max_body_bytes:
            await too_large(scope, receive, send)
            return
        try:
            body = await read_body(receive, self.settings.body_timeout, self.max_body_bytes)
        except BodyTooSlow as exc:  # the client is cut off: `Connection: close` ends the connection
            await error_response(408, str(exc), {"Connection": "close"})(scope, receive, send)
            return
        except ConnectionError:
            return
        if body is None:
            await too_large(scope, receive, send)
            return
        if scope["method"] == "POST" and body.strip():
            try:
                problem = self.request_problem(scope["path"], parse_json(body))
            except BadBody as exc:
                problem = exc.status, str(exc)
            if problem is not None:
                await error_response(*problem)(scope, receive, send)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, replay, tracked_send)
        except Exception as exc:
            log.exception("request %s %s failed", scope["method"], scope["path"])
            if started:
                raise  # the response is under way: the server can only close the connection
            detail = f"internal error ({type(exc).__name__}); see the server log"
            await error_response(500, detail)(scope, replay, send)


def create_app(settings: ServeSettings | None = None, graphs: Sequence[tuple[str, GraphFactory]] = GRAPHS) -> FastAPI:
    """The app; its lifespan starts the embedded model server if the context asks for it."""
    settings = settings or ServeSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with model_server(settings.context) as context:
            app.state.context = context
            yield

    app = FastAPI(
        title="aidsafe",
        description="AIDSAFE safety-reasoning deliberation graphs, served by LangServe.",
        lifespan=lifespan,
    )
    app.add_middleware(RequestGuard, settings=settings)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "graphs": [path for path, _ in graphs]}

    fields = CLIENT_FIELDS | (URL_FIELDS if settings.allow_client_base_url else set())
    config_model = client_config_model(frozenset(fields))
    for path, factory in graphs:
        add_routes(
            app,
            served(factory(settings), config_model),
            path=path,
            per_req_config_modifier=with_server_context,
        )
    return app


def server_config(app: FastAPI, settings: ServeSettings, **options: Any) -> uvicorn.Config:
    """uvicorn's configuration with the server's time limits: a request's headers must arrive within
    `header_timeout` (`limits.TimedH11Protocol`); the body's deadline is kept by `RequestGuard`."""
    return uvicorn.Config(app, http=timed_protocol(settings.header_timeout), **options)
