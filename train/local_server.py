"""Serve a model folder (an `aidsafe train` output, or any Hugging Face causal LM folder) in this
process behind a minimal OpenAI-compatible endpoint on loopback, so `aidsafe bench` measures it
through the same HTTP client as any server.

Only what the bench sends is implemented: `POST /v1/chat/completions` (messages, `max_tokens` or
`max_completion_tokens`, `temperature`; 0 is greedy) and `GET /v1/models`. One generation runs at
a time (a lock): a CPU model gains nothing from interleaving. `http.server` rather than a web
framework, so bench needs nothing beyond the `[train]` extra; Nagle is off (see DESIGN notes:
headers and body leave in two writes and Nagle would add ~40 ms per answer).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from aidsafe.train.models import load_model_folder

DEFAULT_MAX_TOKENS = 256


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that left before its answer (its request timeout) is no error of the server's:
        `http.server` would print a traceback for it in the middle of the user's bench run."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class LocalModelServer:
    """`with LocalModelServer(folder) as server:` serves it at `server.base_url` until the block ends."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.model_name = self.folder.resolve().name
        self._server: _Server | None = None
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def complete(self, request: dict[str, Any]) -> dict[str, Any]:
        """One chat completion in OpenAI's response shape."""
        import torch

        messages = [{"role": m["role"], "content": m.get("content") or ""} for m in request["messages"]]
        max_tokens = int(request.get("max_tokens") or request.get("max_completion_tokens") or DEFAULT_MAX_TOKENS)
        temperature = float(request.get("temperature") or 0.0)
        inputs = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
        with self._lock, torch.inference_mode():
            output = self.model.generate(
                **inputs, max_new_tokens=max_tokens, pad_token_id=self.tokenizer.pad_token_id, **sampling
            )
        prompt_tokens = inputs["input_ids"].shape[1]
        new_tokens = output[0][prompt_tokens:]
        finished = len(new_tokens) < max_tokens or new_tokens[-1].item() == self.tokenizer.eos_token_id
        return {
            "id": f"local-{time.monotonic_ns()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": self.tokenizer.decode(new_tokens, skip_special_tokens=True),
                    },
                    "finish_reason": "stop" if finished else "length",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(new_tokens),
                "total_tokens": prompt_tokens + len(new_tokens),
            },
        }

    def __enter__(self) -> LocalModelServer:
        self.model, self.tokenizer = load_model_folder(self.folder)
        self.model.eval()
        server = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.rstrip("/") != "/v1/models":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                self._send(200, {"object": "list", "data": [{"id": server.model_name, "object": "model"}]})

            def do_POST(self) -> None:
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                try:
                    request = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                    self._send(200, server.complete(request))
                except (ValueError, KeyError, TypeError) as exc:
                    self._send(400, {"error": {"message": f"bad request: {exc}", "type": "invalid_request_error"}})

        self._server = _Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
