"""Replay recorded deliberation requests on the embedded llama.cpp server: what the slot cache saves.

    python benchmarks/prefix_cache.py --save-requests after.jsonl                     # this checkout
    /path/to/main/.venv/bin/python benchmarks/prefix_cache.py --save-requests before.jsonl
    python benchmarks/slot_cache.py before.jsonl after.jsonl [--max-tokens 16] [--repeats 2]

llama-cpp-python's server keeps one slot: a request reuses the KV cache of the longest common token
prefix with the request before it and evaluates only the rest. This script sends every recorded
request of each sample one after another (as `aidsafe generate` does on the embedded model, one
sample at a time), alternating the files sample by sample so both layouts see the same machine
load, and prints per file the wall time and the server's CPU time. Answers are capped at
`--max-tokens` at temperature 0, so the figures are the prompt-evaluation side of a run; the
generated text does not depend on the layout's cache use.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

from aidsafe.embedded import EmbeddedServer


def samples_of(path: Path) -> list[list[dict[str, Any]]]:
    by_sample: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        by_sample[row["sample"]].append(row["request"])
    return list(by_sample.values())


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def send(base_url: str, request: dict[str, Any], max_tokens: int) -> int:
    body = {**request, "model": "SmolLM2-135M-Instruct", "temperature": 0.0, "max_tokens": max_tokens}
    body.pop("max_completion_tokens", None)
    post = urllib.request.Request(
        f"{base_url}/chat/completions", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(post, timeout=600) as reply:
        return int(json.load(reply)["usage"]["prompt_tokens"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("requests", type=Path, nargs="+", help="JSON lines from prefix_cache.py --save-requests.")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    files = {path.name: samples_of(path) for path in args.requests}
    wall: dict[str, float] = defaultdict(float)
    cpu: dict[str, float] = defaultdict(float)
    tokens: dict[str, int] = defaultdict(int)
    with EmbeddedServer(n_threads=os.cpu_count() or 1) as server:
        assert server.process is not None
        names = list(files)
        for repeat, index in itertools.product(range(args.repeats), range(max(map(len, files.values())))):
            turn = (repeat + index) % len(names)
            for name in names[turn:] + names[:turn]:  # who goes first alternates
                if index >= len(files[name]):
                    continue
                started, used = time.perf_counter(), cpu_seconds(server.process.pid)
                for request in files[name][index]:
                    tokens[name] += send(server.base_url, request, args.max_tokens)
                wall[name] += time.perf_counter() - started
                cpu[name] += cpu_seconds(server.process.pid) - used
    load = os.getloadavg()[0]
    print(f"load average: {load:.1f} on {os.cpu_count()} cores; answers capped at {args.max_tokens} tokens")
    print(f"{'requests':<24} {'samples':>7} {'prompt tokens':>13} {'wall s':>8} {'server CPU s':>12}")
    for name, samples in files.items():
        print(f"{name:<24} {len(samples) * args.repeats:>7} {tokens[name]:>13} {wall[name]:>8.1f} {cpu[name]:>12.1f}")
    if len(names) == 2:
        first, second = names
        print(f"{second} / {first}: wall {wall[second] / wall[first]:.2f}, server CPU {cpu[second] / cpu[first]:.2f}")


if __name__ == "__main__":
    main()
