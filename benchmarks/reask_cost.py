"""Failed samples, failed grades and re-asks on the embedded model, counted at the HTTP level.

Starts the embedded llama.cpp server (as `aidsafe generate` does with no `--base-url`), puts a
counting proxy on loopback in front of it, and runs `aidsafe generate` and then `aidsafe evaluate`
on each input file through the proxy. Every model request is logged with its answer schema, how
many messages it carried (a first ask has the system message and one task; anything longer is a
re-ask), and the server's finish reason. Prints, per input: samples, failed samples, failed grades,
model calls per sample and re-ask calls per sample, and the answers cut at `max_tokens`.

    python benchmarks/reask_cost.py examples/prompts.jsonl examples/varied_prompts.jsonl --out /tmp/reask

The `aidsafe` that runs is whichever `python -c "import aidsafe"` finds (set PYTHONPATH to measure
another checkout with the same environment). Takes minutes per file on 2 cores.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aidsafe.embedded.llama_server import MODEL_ALIAS, EmbeddedServer
from aidsafe.state.evaluation import RUBRICS

REQUEST_TIMEOUT = 600
"""Seconds: on a loaded shared machine one answer can take minutes; this measures answers, not load."""


class CountingProxy:
    """Forwards POSTs to `upstream` and appends one line per request to `log`."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.log: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers["Content-Length"]))
                status, answer = proxy.forward(self.path, data)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client timed out
                    self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def forward(self, path: str, data: bytes) -> tuple[int, bytes]:
        request = urllib.request.Request(
            self.upstream + path.removeprefix("/v1"), data=data, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=600) as response:
                status, answer = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, answer = exc.code, exc.read()
        body = json.loads(data)
        fmt = body.get("response_format") or {}
        schema = fmt.get("schema") or (fmt.get("json_schema") or {}).get("schema") or {}
        entry: dict[str, Any] = {
            "schema": schema.get("title"),
            "messages": len(body.get("messages", [])),
            "status": status,
        }
        if status == 200:
            completion = json.loads(answer)
            entry["finish_reason"] = completion["choices"][0]["finish_reason"]
            entry["completion_tokens"] = (completion.get("usage") or {}).get("completion_tokens")
        with self.lock:
            self.log.append(entry)
        return status, answer

    def take(self) -> list[dict[str, Any]]:
        with self.lock:
            taken, self.log = self.log, []
        return taken


def aidsafe(*args: str) -> int:
    return subprocess.run([sys.executable, "-m", "aidsafe.cli.main", *args], check=False).returncode


def call_figures(log: list[dict[str, Any]], samples: int) -> dict[str, Any]:
    first_asks = sum(1 for e in log if e["messages"] <= 2)
    reasks = len(log) - first_asks
    cut = collections.Counter(e["schema"] for e in log if e.get("finish_reason") == "length")
    return {
        "calls": len(log),
        "calls_per_sample": round(len(log) / max(samples, 1), 2),
        "reask_calls": reasks,
        "reask_calls_per_sample": round(reasks / max(samples, 1), 3),
        "cut_at_max_tokens": dict(cut),
        "reasks_by_schema": dict(collections.Counter(e["schema"] for e in log if e["messages"] > 2)),
    }


def measure(input_file: Path, out: Path, proxy: CountingProxy, *, grade: bool) -> dict[str, Any]:
    stem = input_file.stem
    generated = out / f"{stem}.generated.jsonl"
    model = ["--base-url", proxy.base_url, "--model", MODEL_ALIAS, "--request-timeout", str(REQUEST_TIMEOUT)]
    proxy.take()
    aidsafe("generate", str(input_file), "-o", str(generated), "--concurrency", "1", "--no-progress", *model)
    generate_log = proxy.take()
    summary = json.loads(generated.with_suffix(".summary.json").read_text())
    samples = sum(1 for line in input_file.read_text().splitlines() if line.strip())
    errors_file = generated.with_suffix(".errors.jsonl")
    errors = [json.loads(line) for line in errors_file.read_text().splitlines()] if errors_file.exists() else []
    figures: dict[str, Any] = {
        "input": str(input_file),
        "samples": samples,
        "failed_samples": len([e for e in errors if e.get("id")]),
        "failures": [e["error"]["message"][:200] for e in errors],
        "generate_summary": summary,
        "generate_calls": call_figures(generate_log, samples),
    }
    if not grade:
        return figures
    eval_dir = out / f"{stem}.eval"
    aidsafe("evaluate", str(generated), "--out", str(eval_dir), "--concurrency", "1", "--parallel-calls", "1", *model)
    evaluate_log = proxy.take()
    eval_summary = json.loads((eval_dir / "summary.json").read_text())
    graded = sum(1 for line in generated.read_text().splitlines() if line.strip())
    return figures | {
        "graded_records": graded,
        "failed_grades": len(eval_summary["failures"]),
        "grades_asked": graded * len(RUBRICS),
        "grade_failure_messages": sorted({f["message"][:160] for f in eval_summary["failures"]}),
        "evaluate_calls": call_figures(evaluate_log, graded),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="Folder for outputs and the figures (figures.json).")
    parser.add_argument(
        "--no-evaluate",
        action="store_true",
        help="Measure generate only (an older checkout's generate, say, whose grading is not in question).",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    with EmbeddedServer() as server:
        proxy = CountingProxy(server.base_url)
        for input_file in args.inputs:
            result = measure(input_file, args.out, proxy, grade=not args.no_evaluate)
            results.append(result)
            print(json.dumps(result, indent=1), flush=True)
            (args.out / "figures.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
