"""Does the ear-whisper separate chosen from rejected? Mean violation-score gaps on a real model.

For each prompt: the preference graph gives the chosen sample (deliberation), its score, and the
whispered rejected samples with theirs; the baseline is plain second samples of the same generator
without a belief, scored by the same judge. Printed: mean scores and the mean gap
(rejected - chosen) for the whispered best-of-K, the whispered first try, one plain sample and
the best of K plain samples (the fair comparison to best-of-K selection).

    python benchmarks/whisper_gap.py --limit 5            # embedded SmolLM2-135M
    python benchmarks/whisper_gap.py --base-url http://127.0.0.1:8000/v1 --model my-model

Each row is printed as soon as its prompt is done, so an interrupted run still shows figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from aidsafe.batch.endpoints import model_server
from aidsafe.embedded import MODEL_ALIAS
from aidsafe.graphs import preference
from aidsafe.graphs.deliberation import unless_error
from aidsafe.nodes import whispered_generator
from aidsafe.nodes.agent import agent_node
from aidsafe.nodes.context import EMBEDDED
from aidsafe.nodes.scorer import ScorerFromContext
from aidsafe.state.preference import PreferenceState


def plain_sampler() -> Any:
    """The generator without a whisper, then the same scorer as the rejected side."""
    builder: StateGraph[Any, Any, Any, Any] = StateGraph(PreferenceState)
    builder.add_node("plain_generator", agent_node("plain_generator", "generator", whispered_generator.generate))
    builder.add_node("score_plain", ScorerFromContext().node("score_plain", "rejected"))
    builder.add_edge(START, "plain_generator")
    builder.add_conditional_edges("plain_generator", unless_error("score_plain"), ["score_plain", END])
    builder.add_edge("score_plain", END)
    return builder.compile()


def measure(
    prompts: list[dict[str, Any]], context: dict[str, Any], samples: int, n_deliberators: int
) -> list[dict[str, Any]]:
    whisper_graph = preference.build_graph(n_deliberators, checkpointer=InMemorySaver())
    plain = plain_sampler()
    rows = []
    for item in prompts:
        started = time.monotonic()
        config = {"configurable": {"thread_id": item["id"]}}
        out = whisper_graph.invoke({"prompt": item["prompt"], "id": item["id"]}, config, context=context)
        attempts = whisper_graph.get_state(config).values.get("attempts", [])
        plain_scores, plain_errors = [], []
        for _ in range(samples):
            state = plain.invoke({"prompt": item["prompt"]}, context=context)
            if state.get("error"):
                plain_errors.append(state["error"])
            else:
                plain_scores.append(state["attempts"][-1]["score"])
        row = {
            "id": item["id"],
            "error": out.get("error"),
            "chosen": out.get("chosen_score"),
            "whisper_best": out.get("rejected_score"),
            "whisper_first": attempts[0]["score"] if attempts else None,
            "iterations": out.get("iterations"),
            "plain_first": plain_scores[0] if plain_scores else None,
            "plain_best": max(plain_scores) if plain_scores else None,
            "plain_errors": plain_errors,
            "belief": out.get("belief"),
            "seconds": round(time.monotonic() - started, 1),
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def summarize(rows: list[dict[str, Any]]) -> None:
    complete = [r for r in rows if r["chosen"] is not None and None not in (r["whisper_best"], r["plain_first"])]
    print(f"\n{len(complete)} of {len(rows)} prompts complete")
    if not complete:
        return
    for key in ("chosen", "whisper_best", "whisper_first", "plain_first", "plain_best"):
        print(f"mean {key:14s} {statistics.mean(r[key] for r in complete):.3f}")
    for key in ("whisper_best", "whisper_first", "plain_first", "plain_best"):
        gap = statistics.mean(r[key] - r["chosen"] for r in complete)
        print(f"mean gap {key:14s} - chosen = {gap:+.3f}")
    print(f"mean iterations {statistics.mean(r['iterations'] for r in complete):.2f}")
    print(f"mean seconds per prompt {statistics.mean(r['seconds'] for r in rows):.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", default=str(Path(__file__).parents[1] / "examples" / "prompts.jsonl"))
    parser.add_argument("--limit", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=3, help="whisper_iterations (K), also the plain samples")
    parser.add_argument("--base-url", default=EMBEDDED)
    parser.add_argument("--model", default=MODEL_ALIAS)
    parser.add_argument("--agents", type=int, default=2, help="deliberators for the chosen side")
    parser.add_argument("--rounds", type=int, default=2, help="deliberation round budget")
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2, help="threads of the embedded server")
    args = parser.parse_args()
    lines = Path(args.prompts).read_text(encoding="utf-8").splitlines()
    prompts = [json.loads(line) for line in lines if line.strip()][: args.limit]
    context = {
        "base_url": args.base_url,
        "model": args.model,
        "whisper_iterations": args.iterations,
        "max_rounds": args.rounds,
        "max_tokens": args.max_tokens,
    }
    with model_server(context, threads=args.threads) as resolved:
        summarize(measure(prompts, resolved, args.iterations, args.agents))


if __name__ == "__main__":
    main()
