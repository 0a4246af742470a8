"""Whatever a model answers within the JSON schema sent, no sample is lost.

A model server whose answers are random but valid for the schema of each request (`random_server`:
random integers in bounds, random strings, list lengths anywhere in minItems..maxItems, random
booleans and enum values, optional fields present or not) drives `aidsafe generate`, `prefer` and
`evaluate` over 200 samples each: zero failed samples, zero failed grades, every record complete.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from aidsafe.cli.main import main
from aidsafe.state.evaluation import RUBRICS
from aidsafe.state.records import GenerateRecord, PreferenceRecord
from tests.fakes import RandomSchemaAnswers, StubServer, prompts, read_jsonl, schema_of, write_jsonl

pytestmark = pytest.mark.slow

SAMPLES = 200
FAST = ["--model", "random", "--no-progress", "--concurrency", "64"]


def run(command: str, server: StubServer, *args: str) -> int:
    return main([command, *args, "--base-url", server.base_url, *FAST])


def assert_nothing_lost(out: Path, record_cls: type, count: int) -> list[dict]:
    lines = read_jsonl(out)
    assert len(lines) == count and len({line["id"] for line in lines}) == count
    for line in lines:
        always = {name for name, field in record_cls.model_fields.items() if field.exclude_if is None}
        assert set(line) >= always, always - set(line)  # `cost_usd`, `safety`: only with prices, a gate
        record_cls.model_validate(line)
    errors = out.with_suffix(".errors.jsonl")
    assert not errors.exists() or errors.read_text() == ""
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["failed"] == 0 and summary["done"] == count
    return lines


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """200 generate records from the randomized server, shared by the prefer and evaluate tests."""
    folder = tmp_path_factory.mktemp("random")
    inputs = write_jsonl(folder / "in.jsonl", prompts(SAMPLES))
    out = folder / "generated.jsonl"
    with StubServer(respond=RandomSchemaAnswers()) as server:
        code = run("generate", server, str(inputs), "-o", str(out))
        requests = list(server.requests)
    return code, out, requests


def test_generate_loses_no_sample_to_random_schema_valid_answers(generated):
    code, out, requests = generated
    assert code == 0
    lines = assert_nothing_lost(out, GenerateRecord, SAMPLES)
    assert Counter(line["stop_reason"] for line in lines).keys() <= {"consensus", "budget"}
    # each call sent the ids of its own thoughts: the deliberator's enum grows with the chain
    enums = {
        tuple(option.get("enum", ()))
        for request in requests
        if schema_of(request)["title"] == "DeliberatorAnswer"
        for option in schema_of(request)["properties"]["new_thoughts"]["items"]["properties"]["corrects"]["anyOf"]
    }
    assert len(enums) > 3 and all(ids == tuple(range(len(ids))) for ids in enums)


def test_dangling_references_are_repaired_not_lost(tmp_path):
    """A server that ignores the per-call enums (writes any integer, any policy id)."""
    inputs = write_jsonl(tmp_path / "in.jsonl", prompts(SAMPLES))
    out = tmp_path / "out.jsonl"
    with StubServer(respond=RandomSchemaAnswers(free_references=True)) as server:
        assert run("generate", server, str(inputs), "-o", str(out), "--max-rounds", "1") == 0
    lines = assert_nothing_lost(out, GenerateRecord, SAMPLES)
    rules = Counter(repair["rule"] for line in lines for repair in line["repairs"])
    assert {"unknown_policy_id", "unknown_removal", "unknown_correction_target"} <= set(rules)
    for line in lines:
        ids = {t["id"] for t in line["thoughts"]} | {r["thought"]["id"] for r in line["removed_thoughts"]}
        assert all(t["corrects"] is None or t["corrects"] in ids for t in line["thoughts"])


def test_prefer_loses_no_sample_to_random_schema_valid_answers(generated, tmp_path):
    """Half the input is generate records (chosen side given), half prompts (deliberated first)."""
    _, generated_file, _ = generated
    half = SAMPLES // 2
    records = read_jsonl(generated_file)[:half]
    fresh = [{"id": f"p{i}", "prompt": f"fresh prompt {i}"} for i in range(SAMPLES - half)]
    inputs = write_jsonl(tmp_path / "in.jsonl", [*records, *fresh])
    out = tmp_path / "pairs.jsonl"
    with StubServer(respond=RandomSchemaAnswers(seed=1)) as server:
        code = run("prefer", server, str(inputs), "-o", str(out), "--max-rounds", "1", "--whisper-iterations", "2")
    assert code == 0
    assert_nothing_lost(out, PreferenceRecord, SAMPLES)


def test_evaluate_fails_no_grade_on_random_schema_valid_answers(generated, tmp_path):
    _, generated_file, _ = generated
    baseline = write_jsonl(tmp_path / "baseline.jsonl", read_jsonl(generated_file)[:50])
    out = tmp_path / "eval"
    with StubServer(respond=RandomSchemaAnswers(seed=2)) as server:
        code = main(
            ["evaluate", str(generated_file), "--baseline", str(baseline), "--out", str(out),
             "--base-url", server.base_url, "--model", "random", "--concurrency", "64"]
        )  # fmt: skip
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failures"] == [] and summary["pairwise"]["n"] == 50
    samples = read_jsonl(out / "samples.jsonl")
    assert len(samples) == SAMPLES
    assert all(set(sample["run"]["grades"]) == set(RUBRICS) for sample in samples)
