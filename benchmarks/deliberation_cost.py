"""Print LLM calls, prompt and output tokens and seconds per sample of the deliberation graph.

    python benchmarks/deliberation_cost.py [--base-url URL --model NAME] [--rounds 3] [--agents 2]

With no --base-url it starts the embedded llama.cpp server. How much of those prompt tokens a
prefix cache can reuse is `benchmarks/prefix_cache.py`'s figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler

from aidsafe.batch.endpoints import model_server
from aidsafe.graphs.deliberation import build_graph
from aidsafe.nodes.context import Context


class PromptTokens(BaseCallbackHandler):
    def __init__(self) -> None:
        self.prompt_tokens: list[int] = []

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        usage = response.generations[0][0].message.usage_metadata or {}
        self.prompt_tokens.append(usage.get("input_tokens", 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url", default=None)
    parser.add_argument("--model", default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--agents", type=int, default=2)
    parser.add_argument("--prompts", default="examples/prompts.jsonl")
    args = parser.parse_args()
    context = {k: v for k, v in {"base_url": args.base_url, "model": args.model}.items() if v}
    with open(args.prompts, encoding="utf-8") as handle:
        prompts = [json.loads(line)["prompt"] for line in handle if line.strip()]
    with model_server({**context, "max_rounds": args.rounds}) as resolved:
        ctx = Context(**resolved)
        graph = build_graph(args.agents)
        rows = []
        for prompt in prompts:
            counter = PromptTokens()
            started = time.perf_counter()
            out = graph.invoke({"prompt": prompt}, context=ctx, config={"callbacks": [counter]})
            rows.append((out, counter.prompt_tokens, time.perf_counter() - started))
    print(f"agents={args.agents} max_rounds={args.rounds} model={ctx.model}")
    for out, tokens, seconds in rows:
        print(
            f"  rounds={out.get('rounds')} stop={out.get('stop_reason')} calls={out['usage']['llm_calls']} "
            f"prompt_tokens={sum(tokens)} output_tokens={out['usage']['output_tokens']} seconds={seconds:.1f}"
        )
    calls = [out["usage"]["llm_calls"] for out, _, _ in rows]
    prompt_tokens = [sum(tokens) for _, tokens, _ in rows]
    print(
        f"mean per sample: calls={statistics.mean(calls):.1f} prompt_tokens={statistics.mean(prompt_tokens):.0f} "
        f"seconds={statistics.mean(r[2] for r in rows):.1f}"
    )


if __name__ == "__main__":
    main()
