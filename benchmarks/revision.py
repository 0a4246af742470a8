"""Print the model calls of `aidsafe revise` against a full regeneration, for one edited clause and
for one added policy, split into triage and redo calls.

    python benchmarks/revision.py [--records 200] [--seed 0]

Everything runs against the tests' loopback stub server answering random but schema-valid content
(`tests/fakes.py` `RandomSchemaAnswers`): `aidsafe generate` makes the records under the bundled
policies, then each case revises them (`aidsafe revise`) and, for comparison, regenerates them
under the new policies (`aidsafe generate --policies NEW`). Calls are counted at the server, per
answer schema (`TriageAnswer` is the triage call; every other schema is redo work).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aidsafe.cli.main import main as aidsafe  # noqa: E402
from aidsafe.policies import DEFAULT_POLICY_FILE  # noqa: E402
from tests.fakes import RandomSchemaAnswers, StubServer, schema_of  # noqa: E402

EDITED_CLAUSE = "Instructions for weapons, explosives, poisons or drones that can injure people."
ELECTIONS = {
    "id": "elections",
    "title": "Elections",
    "forbids": ["Misleading people about how, when or where to vote."],
}


def edit_clause(data: dict[str, Any]) -> None:
    next(p for p in data["policies"] if p["id"] == "physical_harm")["forbids"][0] = EDITED_CLAUSE


def add_policy(data: dict[str, Any]) -> None:
    data["policies"].append(ELECTIONS)


CASES: dict[str, Callable[[dict[str, Any]], None]] = {"one edited clause": edit_clause, "one added policy": add_policy}


def run(server: StubServer, *args: str) -> Counter[str]:
    """Run an aidsafe command against `server`; the calls it made, per answer schema."""
    before = len(server.requests)
    with contextlib.redirect_stdout(io.StringIO()):
        code = aidsafe([*args, "--base-url", server.base_url, "--model", "stub", "--no-progress", "--concurrency", "8"])
    if code != 0:
        raise SystemExit(f"aidsafe {args[0]} exited with {code}")
    return Counter(schema_of(request)["title"] for request in server.requests[before:])


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="aidsafe-revision-"))
    prompts = folder / "prompts.jsonl"
    prompts.write_text(
        "".join(
            json.dumps({"id": f"p{i}", "prompt": f"question {i}: how do I do thing {i}?"}) + "\n"
            for i in range(args.records)
        )
    )
    with StubServer(respond=RandomSchemaAnswers(seed=args.seed)) as server:
        old = folder / "old.generated.jsonl"
        made = run(server, "generate", str(prompts), "-o", str(old))
        fresh = [r["usage"]["llm_calls"] for r in read(old)]
        print(f"{args.records} records made under the bundled policies: {sum(made.values())} calls "
              f"({statistics.mean(fresh):.2f} per record)")  # fmt: skip
        for name, edit in CASES.items():
            data = yaml.safe_load(DEFAULT_POLICY_FILE.read_text(encoding="utf-8"))
            edit(data)
            new = folder / f"{name.replace(' ', '_')}.yaml"
            new.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
            out = folder / f"{new.stem}.revised.jsonl"
            revised = run(server, "revise", str(old), "--policies", str(new), "-o", str(out))
            regenerated = run(
                server, "generate", str(prompts), "--policies", str(new), "-o", str(folder / f"{new.stem}.jsonl")
            )
            records = read(out)
            by_outcome: dict[str, list[int]] = {}
            for record in records:
                by_outcome.setdefault(record["revision"]["outcome"], []).append(record["usage"]["llm_calls"])
            triage = revised["TriageAnswer"]
            redo = sum(revised.values()) - triage
            print(f"\n{name}:")
            print("  records: " + ", ".join(f"{k} {len(v)}" for k, v in sorted(by_outcome.items())))
            print(f"  revision: {triage + redo} calls (triage {triage}, redo {redo}); "
                  f"full regeneration: {sum(regenerated.values())} calls")  # fmt: skip
            for outcome, calls in sorted(by_outcome.items()):
                print(f"  per {outcome} record: mean {statistics.mean(calls):.2f} calls, max {max(calls)}")
            print(f"  per fresh record (the regeneration): mean {sum(regenerated.values()) / args.records:.2f} calls")
    print(f"\nfiles in {folder}")


if __name__ == "__main__":
    main()
