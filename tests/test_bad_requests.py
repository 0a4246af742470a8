"""The bad-input catalogue over HTTP: every malformed or out-of-range request to `aidsafe serve` gets a
4xx with a JSON `detail` naming what is wrong (never a 500, never a traceback), and slow clients
are cut off within the configured limits while other requests are served."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.tiers import require

require("fastapi", "serve")  # before the imports that need it
pytestmark = pytest.mark.serve

from starlette.testclient import TestClient

from aidsafe.serving import ServeSettings, create_app
from aidsafe.serving.limits import timed_protocol
from tests.fakes import StubServer
from tests.services import running

INVOKE = "/deliberation/invoke"


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@dataclass(frozen=True)
class Request:
    name: str
    body: bytes | str | dict | list
    status: int
    says: str
    path: str = INVOKE
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "POST"


def invoke(prompt: Any = "How do I pick a lock?", **more: Any) -> dict:
    return {"input": {"prompt": prompt}, **more}


def configured(**values: Any) -> dict:
    return invoke(config={"configurable": values})


REQUESTS = [
    Request("empty prompt", invoke(""), 422, "input.prompt: empty prompt"),
    Request("blank prompt", invoke(" \n\t"), 422, "input.prompt: empty prompt"),
    Request("900,000-character prompt", invoke("x" * 900_000), 422, "900,000 characters, over the limit of 16,000"),
    Request("prompt not text", invoke(5), 422, "prompt"),
    Request("prompt missing", {"input": {"id": "a"}}, 422, "prompt"),
    Request("input missing", {"config": {}}, 422, "input"),
    Request("body a list", [1, 2], 422, "dictionary"),
    Request("body a string", '"text"', 422, "dictionary"),
    Request("empty body", b"", 422, "Invalid JSON body"),
    Request("malformed JSON", b'{"input": ', 422, "malformed JSON: Expecting value at line 1 column 11"),
    Request("not UTF-8", b'{"input": {"prompt": "caf\xe9"}}', 400, "not UTF-8 (byte 0xe9 at offset 25)"),
    Request(
        "nested past the recursion limit",
        '{"input": {"prompt": "p", "metadata": ' + nested(5000) + "}}",
        400,
        "nested deeper than 64",
    ),
    Request(
        "nested past the depth limit",
        '{"input": {"prompt": "p", "metadata": {"x": ' + nested(900) + "}}}",
        400,
        "nested deeper than 64",
    ),
    Request(
        "NaN", '{"input": {"prompt": "p"}, "config": {"configurable": {"temperature": NaN}}}', 400, "NaN is not JSON"
    ),
    Request(
        "Infinity",
        '{"input": {"prompt": "p"}, "config": {"configurable": {"temperature": -Infinity}}}',
        400,
        "-Infinity is not JSON",
    ),
    Request(
        "integer of 5,000 digits",
        '{"input": {"prompt": "p"}, "config": {"configurable": {"max_rounds": 1' + "0" * 5000 + "}}}",
        400,
        "unusable JSON value",
    ),
    Request(
        "lone surrogate in the prompt",
        '{"input": {"prompt": "bad \\ud800"}}',
        422,
        "'input'.prompt holds a lone surrogate",
    ),
    Request(
        "lone surrogate in metadata",
        '{"input": {"prompt": "p", "metadata": {"k": "\\udfff"}}}',
        422,
        "'input'.metadata.k holds a lone surrogate",
    ),
    Request("NUL in the prompt", invoke("a\u0000b"), 422, "NUL character"),
    Request("max_rounds zero", configured(max_rounds=0), 422, "max_rounds"),
    Request("max_rounds over the cap", configured(max_rounds=11), 422, "less than or equal to 10"),
    Request("temperature out of range", configured(temperature=3), 422, "temperature"),
    Request("empty model name", configured(model=" "), 422, "must not be empty"),
    Request("request timeout zero", configured(request_timeout=0), 422, "request_timeout"),
    Request("max tokens over the cap", configured(max_tokens=100_000), 422, "max_tokens"),
    Request("structured output unknown", configured(structured_output="xml"), 422, "structured_output"),
    Request("base_url from a client", configured(base_url="http://evil.example/v1"), 422, "base_url"),
    Request("policy_file from a client", configured(policy_file="/etc/passwd"), 422, "policy_file"),
    Request("unknown config field", configured(max_round=2), 422, "max_round"),
    Request("config not an object", invoke(config="x"), 422, "config"),
    Request(
        "batch inputs not a list", {"inputs": {"prompt": "p"}}, 422, "'inputs' must be a list", "/deliberation/batch"
    ),
    Request(
        "batch over the cap",
        {"inputs": [{"prompt": f"p{i}"} for i in range(33)]},
        413,
        "33 inputs in one /batch request; the server takes at most 32",
        "/deliberation/batch",
    ),
    Request(
        "batch with an empty prompt",
        {"inputs": [{"prompt": "p"}, {"prompt": ""}]},
        422,
        "inputs.1.prompt: empty prompt",
        "/deliberation/batch",
    ),
    Request("stream with an empty prompt", invoke(""), 422, "input.prompt: empty prompt", "/deliberation/stream"),
    Request(
        "stream nested too deeply",
        '{"input": {"prompt": "p", "metadata": ' + nested(5000) + "}}",
        400,
        "nested deeper",
        "/deliberation/stream",
    ),
    Request("preference with an empty prompt", invoke(""), 422, "input.prompt: empty prompt", "/preference/invoke"),
    Request("body over the size limit", invoke("x" * 1_100_000), 413, "over the server's limit of 1000000 bytes"),
    Request("Content-Length not a number", b"{}", 400, "invalid Content-Length", headers={"content-length": "12x"}),
    Request("unknown path", {}, 404, "Not Found", "/nowhere"),
    Request("GET on invoke", b"", 405, "Method Not Allowed", method="GET"),
]


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with StubServer() as stub, TestClient(create_app(ServeSettings(context={"base_url": stub.base_url}))) as http:
        yield http


@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: r.name)
def test_bad_request_gets_a_4xx_with_a_json_detail(client, request_):
    body = request_.body
    content = body if isinstance(body, bytes) else body.encode() if isinstance(body, str) else json.dumps(body).encode()
    headers = {"content-type": "application/json", **request_.headers}
    reply = client.request(request_.method, request_.path, content=content, headers=headers)
    assert reply.status_code == request_.status, reply.text[:500]
    assert request_.says in json.dumps(reply.json()["detail"], ensure_ascii=False), reply.text[:500]
    assert "Traceback" not in reply.text


# --------------------------------------------------------------------------------------------
# Slow clients, against a real uvicorn with the protocol and limits `aidsafe serve` uses

LIMIT = 1.0


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int]]:
    settings = ServeSettings(context={"base_url": "http://127.0.0.1:9/v1"}, header_timeout=LIMIT, body_timeout=LIMIT)
    with running(create_app(settings), http=timed_protocol(settings.header_timeout)) as base:
        host, port = base.removeprefix("http://").split(":")
        yield host, int(port)


def slow_client(address: tuple[str, int], first: bytes, drip: bytes) -> tuple[bytes, float]:
    """Send `first`, then one byte of `drip` every 0.2 s; return what the server answered and
    when it closed the connection (seconds after connecting)."""
    started = time.monotonic()
    with socket.create_connection(address, timeout=30) as sock:
        sock.sendall(first)
        sock.setblocking(False)
        received = b""
        for byte in drip:
            time.sleep(0.2)
            try:
                sock.send(bytes([byte]))
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
            except BlockingIOError:
                continue
            except OSError:
                break
        sock.setblocking(True)
        while chunk := sock.recv(65536):
            received += chunk
    return received, time.monotonic() - started


@pytest.mark.parametrize(
    ("first", "drip"),
    [
        (b"", b""),  # connects and sends nothing
        (b"POST /deliberation/invoke HTTP/1.1\r\nHost: x\r\n", b"X-Slow: " + b"a" * 200),  # headers byte by byte
        (
            b"POST /deliberation/invoke HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 400\r\n\r\n",
            b'{"input": {"prompt": "' + b"a" * 300,  # the body byte by byte
        ),
    ],
    ids=["idle", "slow headers", "slow body"],
)
def test_a_slow_client_is_cut_off_within_the_limit_while_others_are_served(server, first, drip):
    results: dict[str, Any] = {}
    slow = threading.Thread(target=lambda: results.update(reply=slow_client(server, first, drip)))
    slow.start()
    time.sleep(0.3)
    served = [httpx.get(f"http://{server[0]}:{server[1]}/health", timeout=10).status_code for _ in range(3)]
    slow.join(timeout=60)
    received, closed_after = results["reply"]
    assert served == [200, 200, 200]
    assert received.startswith(b"HTTP/1.1 408"), received[:200]
    assert b'"detail"' in received and b"within 1 s" in received
    assert closed_after < LIMIT + 5  # the drip would have taken 40-60 s
