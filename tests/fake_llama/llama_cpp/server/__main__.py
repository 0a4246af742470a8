"""A stand-in for `python -m llama_cpp.server`: the same flags, answers like `tests.fakes.StubServer`.

Chat completion number `FAKE_LLAMA_CRASH_ON` (1 is aidsafe's start-up check) ends the process
with SIGSEGV, as a llama.cpp build that does not run on the CPU does; 0 never crashes. Each chat
completion adds a line to the file `FAKE_LLAMA_REQUESTS` names, if set: "chat completion", or
"crash at <unix time>".
"""

from __future__ import annotations

import argparse
import ctypes
import itertools
import json
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fakes import StubServer, send_json

parser = argparse.ArgumentParser()
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--model_alias", default="fake")
args, _ = parser.parse_known_args()
crash_on = int(os.environ.get("FAKE_LLAMA_CRASH_ON", "0"))
stub = StubServer()
requests = itertools.count(1)


class Handler(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        send_json(self, 200, json.dumps({"object": "list", "data": [{"id": args.model_alias, "object": "model"}]}))

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        crash = next(requests) == crash_on
        if log := os.environ.get("FAKE_LLAMA_REQUESTS"):
            with open(log, "a") as handle:
                handle.write(f"crash at {time.time()}\n" if crash else "chat completion\n")
        if crash:
            ctypes.string_at(0)  # a real segmentation fault, in this thread, before any answer
        if "response_format" not in body and "tools" not in body:  # the start-up check: plain text
            body = {**body, "response_format": {"type": "json_object", "schema": {"type": "string"}}}
        send_json(self, *stub.handle(body))


print(f"fake llama.cpp server on {args.host}:{args.port}", flush=True)
ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()
