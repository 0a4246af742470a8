"""A stand-in for `python -m llama_cpp.server`: the same flags, answers like
`tests.fakes.LlamaCppPythonStandIn` (HTTP 500 on `json_schema`), and the same access-log line for
each answered chat completion.

Chat completion number `FAKE_LLAMA_CRASH_ON` (1 is aidsafe's start-up check) ends the process
with the signal `FAKE_LLAMA_CRASH_WITH` names: SIGSEGV (the default, a real segmentation fault, as
a llama.cpp build that does not run on the CPU gives), SIGILL, SIGABRT (as a llama.cpp assertion),
or SIGKILL (as the out-of-memory killer); 0 never crashes. Each chat completion adds a line to the
file `FAKE_LLAMA_REQUESTS` names, if set: "chat completion <response_format type>", or "crash at
<unix time>" (and "killed pid <pid>" before a SIGKILL, for a stand-in `dmesg`).
"""

from __future__ import annotations

import argparse
import ctypes
import itertools
import json
import os
import signal
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fakes import LlamaCppPythonStandIn, send_json

parser = argparse.ArgumentParser()
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--model_alias", default="fake")
args, _ = parser.parse_known_args()
crash_on = int(os.environ.get("FAKE_LLAMA_CRASH_ON", "0"))
stub = LlamaCppPythonStandIn()
crash_with = signal.Signals[os.environ.get("FAKE_LLAMA_CRASH_WITH", "SIGSEGV")]
requests = itertools.count(1)


class Handler(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        model = {"id": args.model_alias, "object": "model", "owned_by": "me", "permissions": []}
        send_json(self, 200, json.dumps({"object": "list", "data": [model]}))

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        crash = next(requests) == crash_on
        if log := os.environ.get("FAKE_LLAMA_REQUESTS"):
            with open(log, "a") as handle:
                kind = (body.get("response_format") or {}).get("type", "text")
                handle.write(f"crash at {time.time()}\n" if crash else f"chat completion {kind}\n")
                if crash and crash_with == signal.SIGKILL:
                    handle.write(f"killed pid {os.getpid()}\n")
        if crash:
            crash_now()
        if "response_format" not in body and "tools" not in body:  # the start-up check: plain text
            body = {**body, "response_format": {"type": "json_object", "schema": {"type": "string"}}}
        status, text = stub.handle(body)
        send_json(self, status, text)
        print(f'INFO:     127.0.0.1:0 - "POST /v1/chat/completions HTTP/1.1" {status}', flush=True)


def crash_now() -> None:
    """End the process by `crash_with`, in this thread, before any answer."""
    if crash_with == signal.SIGSEGV:
        ctypes.string_at(0)  # a real segmentation fault
    elif crash_with == signal.SIGABRT:
        os.abort()
    os.kill(os.getpid(), crash_with)
    time.sleep(10)  # the signal arrives


print(f"fake llama.cpp server on {args.host}:{args.port}", flush=True)
ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()
