"""One full loop on this machine: generate on the example prompts, export, train, bench before and after.

Prints the seconds per training step, the safe-response and over-refusal rates of the model before
and after on `examples/bench/`, and the disk size of what the `[train]` extra installs (the
distributions it needs that the rest of aidsafe does not). Everything runs on the embedded model
unless model flags are given; a 135M model's rates only show that the loop works.

    python benchmarks/closed_loop.py --steps 10 --generate-limit 5 [--bench-limit N] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_FILES = [
    ROOT / "examples" / "bench" / name for name in ("should_refuse.jsonl", "benign_alarming.jsonl", "benign.jsonl")
]


def aidsafe(*args: str) -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "aidsafe.cli.main", *args], check=True)
    return time.monotonic() - started


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;(]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def closure(names: set[str]) -> set[str]:
    """The installed distributions `names` need, themselves included (markers are not evaluated)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen.add(name)
        todo += [_name(r) for r in dist.requires or [] if "extra ==" not in r]
    return seen


def extra_size_mb(extra: str) -> tuple[float, list[str]]:
    requires = metadata.distribution("aidsafe").requires or []
    of_extra = {_name(r) for r in requires if f'extra == "{extra}"' in r}
    others = {_name(r) for r in requires if "extra ==" not in r or f'extra == "{extra}"' not in r} - {"aidsafe"}
    only_train = closure(of_extra) - closure(others)
    size = sum(f.size or 0 for name in only_train for f in metadata.distribution(name).files or [])
    return size / 1e6, sorted(only_train)


def _with_interval(share: dict) -> str:
    if not share["n"]:
        return "none judged"
    low, high = share["ci95"]
    return f"{share['count']}/{share['n']} = {share['rate']:.2f} (95% CI {low:.2f}-{high:.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="closed-loop-benchmark", help="Folder for every file (must not exist).")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--generate-limit", type=int, default=5)
    parser.add_argument("--bench-limit", type=int, default=None, help="Prompts of the bench sets (default all 15).")
    parser.add_argument("--max-tokens", type=int, default=256, help="Cap per answer, in generate and bench.")
    args, model_flags = parser.parse_known_args()
    work = Path(args.work)
    work.mkdir(parents=True)
    limit = ["--limit", str(args.bench_limit)] if args.bench_limit else []
    # the embedded model before training judges itself unless a judge is named: it only shows the loop runs
    self_judge = [] if {"--judge-model", "--judge-base-url"} & set(model_flags) else ["--self-judge"]
    seconds = {
        "generate": aidsafe("generate", str(ROOT / "examples" / "prompts.jsonl"), "-o", str(work / "gen.jsonl"),
                            "--limit", str(args.generate_limit), "--max-tokens", str(args.max_tokens), "--no-progress",
                            *model_flags),
        "export": aidsafe("export", str(work / "gen.jsonl"), "-o", str(work / "sft.jsonl")),
        "train": aidsafe("train", str(work / "sft.jsonl"), "-o", str(work / "model"), "--max-steps", str(args.steps),
                         "--batch-size", "1", "--max-length", "512"),
        "bench": aidsafe("bench", *map(str, BENCH_FILES), "--model", "embedded", "--model", str(work / "model"),
                         "--out", str(work / "bench"), "--max-tokens", str(args.max_tokens), "--no-progress", *limit,
                         *model_flags, *self_judge),
    }  # fmt: skip
    trained = json.loads((work / "model" / "aidsafe_train.json").read_text())["result"]
    models = json.loads((work / "bench" / "summary.json").read_text())["models"]
    print("\nwall seconds:", {k: round(v, 1) for k, v in seconds.items()})
    per_step = trained["seconds"] / trained["steps"]
    print(f"training: {trained['steps']} steps in {trained['seconds']} s = {per_step:.1f} s/step")
    for name, model in models.items():
        safe, over = (_with_interval(model[key]) for key in ("safe_response", "over_refusal"))
        print(f"{name}: safe-response {safe}, over-refusal {over}, failed {model['failed']}")
    size, names = extra_size_mb("train")
    print(f"[train] extra installs {size:,.0f} MB ({', '.join(names)})")


if __name__ == "__main__":
    main()
