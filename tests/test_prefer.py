"""`aidsafe prefer` end to end against the OpenAI-compatible stub on 127.0.0.1: records from prompts and
from `aidsafe generate` output, resume, bad input and failed samples."""

from __future__ import annotations

import json
from collections import Counter
from functools import partial

from aidsafe.batch.driver import BatchOptions, run_batch
from aidsafe.batch.prefer import prefer_job, read_preference_samples
from aidsafe.cli.main import main
from aidsafe.state.records import ErrorRecord, PreferenceRecord
from tests.fakes import (
    CHOSEN,
    STUB_BELIEF,
    StubServer,
    generate,
    preference_model,
    prompts,
    read_jsonl,
    schema_of,
    whisper_stub_answer,
    write_jsonl,
)

WHISPER_TITLES = {"BeliefAnswer", "WhisperedAnswer", "ViolationAnswer"}
"""What one whisper loop asks; the deliberation asks IntentAnswer, SeedAnswer, DeliberatorAnswer, RefinerAnswer."""
CALLS_WITH_CHOSEN = 1 + 3 * 3
"""Score the chosen side, then three tries (the stub's judge always rates 0, under the threshold)."""


def prefer(server: StubServer, *args: str) -> int:
    return main(["prefer", *args, "--base-url", server.base_url, "--model", "stub-model", "--no-progress"])


def titles(requests: list[dict]) -> Counter[str]:
    return Counter(schema_of(r)["title"] for r in requests)


def test_prefer_from_prompts_writes_records_and_sends_bad_lines_to_errors(tmp_path, capsys):
    inputs = write_jsonl(tmp_path / "in.jsonl", [*prompts(2), {"id": "empty", "prompt": " "}])
    with inputs.open("a") as handle:
        handle.write('{"id": "cut", "prompt": \n')
    out = tmp_path / "out.jsonl"
    with StubServer(respond=whisper_stub_answer) as server:
        assert prefer(server, str(inputs), "-o", str(out), "--max-rounds", "1") == 1
    lines = read_jsonl(out)
    assert sorted(r["id"] for r in lines) == ["s0", "s1"]
    assert set(lines[0]) == {
        "id", "prompt", "chosen", "rejected", "belief", "chosen_score", "rejected_score", "iterations",
        "negative_example", "model", "policy_set", "repairs", "refusals", "usage", "metadata", "settings",
    }  # fmt: skip
    record = PreferenceRecord.model_validate(lines[0])
    assert record.negative_example is True and record.model == "stub-model" and record.belief == STUB_BELIEF
    assert record.iterations == 3 and record.rejected["response"] and record.chosen["response"]
    assert STUB_BELIEF not in json.dumps(record.rejected)
    assert titles(server.requests)["IntentAnswer"] == 2  # the chosen side was deliberated
    errors = [ErrorRecord.model_validate(e) for e in read_jsonl(tmp_path / "out.errors.jsonl")]
    assert [(e.id, e.error["node"]) for e in errors] == [("empty", "input"), (None, "input")]
    assert "empty prompt" in errors[0].error["message"] and f"{inputs}:4: malformed JSON" in errors[1].error["message"]
    summary = json.loads((tmp_path / "out.summary.json").read_text())
    assert (summary["done"], summary["input_errors"], summary["failed"]) == (2, 2, 0)
    assert "done 2, failed 0" in capsys.readouterr().out


def test_chosen_is_reused_from_a_generate_file_without_generating_again(tmp_path, stub_server):
    inputs = write_jsonl(tmp_path / "in.jsonl", [{**row, "category": "benign"} for row in prompts(3)])
    generated = tmp_path / "in.generated.jsonl"
    assert generate(stub_server, str(inputs), "-o", str(generated), "--max-rounds", "1") == 0
    out = tmp_path / "pairs.jsonl"
    with StubServer(respond=whisper_stub_answer) as server:
        assert prefer(server, str(generated), "-o", str(out)) == 0
    assert set(titles(server.requests)) == WHISPER_TITLES
    assert len(server.requests) == 3 * CALLS_WITH_CHOSEN
    source = {r["id"]: r for r in read_jsonl(generated)}
    for record in map(PreferenceRecord.model_validate, read_jsonl(out)):
        assert record.chosen == {"thoughts": source[record.id]["thoughts"], "response": source[record.id]["response"]}
        assert record.prompt == source[record.id]["prompt"] and record.usage["llm_calls"] == CALLS_WITH_CHOSEN
        assert record.metadata == {"category": "benign"}  # the prompt file's column, kept through both runs


def test_a_generate_row_without_a_usable_chosen_side_is_an_input_error(tmp_path):
    inputs = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"id": "half", "prompt": "p1", "thoughts": []},
            {"id": "odd", "prompt": "p2", "thoughts": [{"text": "no id"}], "response": "r"},
            {"id": "ok", "prompt": "p3", "thoughts": [], "response": "Fine."},
            {"id": "prompt", "prompt": "p4", "response": "A reference answer: a prompt row, not a generate record."},
        ],
    )
    out = tmp_path / "out.jsonl"
    with StubServer(respond=whisper_stub_answer) as server:
        assert prefer(server, str(inputs), "-o", str(out)) == 1
    assert sorted(r["id"] for r in read_jsonl(out)) == ["ok", "prompt"]
    assert titles(server.requests)["IntentAnswer"] == 1  # only the prompt row was deliberated
    half, odd = read_jsonl(tmp_path / "out.errors.jsonl")
    assert half["id"] == "half" and "has 'thoughts' but no 'response'" in half["error"]["message"]
    assert odd["id"] == "odd" and "thoughts.0.id" in odd["error"]["message"]


def test_rerun_skips_finished_ids(tmp_path):
    inputs = write_jsonl(tmp_path / "in.jsonl", prompts(2))
    out = tmp_path / "out.jsonl"
    with StubServer(respond=whisper_stub_answer) as server:
        assert prefer(server, str(inputs), "-o", str(out), "--limit", "1", "--max-rounds", "1") == 0
        before = len(server.requests)
        assert prefer(server, str(inputs), "-o", str(out), "--max-rounds", "1") == 0
        rerun = server.requests[before:]
    assert sorted(r["id"] for r in read_jsonl(out)) == ["s0", "s1"]
    assert prompts(2)[0]["prompt"] not in json.dumps(rerun) and prompts(2)[1]["prompt"] in json.dumps(rerun)
    summary = json.loads((tmp_path / "out.summary.json").read_text())
    assert (summary["done"], summary["skipped"]) == (1, 1)


def test_a_sample_whose_whisperer_fails_goes_to_errors_and_the_rest_completes(tmp_path):
    def garbage_belief_for_failme(request: dict) -> str:
        if schema_of(request)["title"] == "BeliefAnswer" and "FAILME" in json.dumps(request):
            return "not json"
        return whisper_stub_answer(request)

    inputs = write_jsonl(tmp_path / "in.jsonl", [{"id": "bad", "prompt": "FAILME", "thoughts": [], "response": "r"}])
    with inputs.open("a") as handle:
        handle.write(json.dumps({"id": "good", "prompt": "fine", "thoughts": [], "response": "r"}) + "\n")
    out = tmp_path / "out.jsonl"
    with StubServer(respond=garbage_belief_for_failme) as server:
        assert prefer(server, str(inputs), "-o", str(out), "--parse-retries", "0") == 1
    assert [r["id"] for r in read_jsonl(out)] == ["good"]
    (error,) = read_jsonl(tmp_path / "out.errors.jsonl")
    assert error["id"] == "bad" and error["error"]["node"] == "ear_whisperer" and error["prompt"] == "FAILME"


def test_a_chosen_side_from_a_generate_file_never_resumes_a_checkpoint_made_without_it(tmp_path):
    """A run from prompts deliberates its own chosen side and is interrupted; the re-run from a
    generate file must use the file's chosen side, not continue the old thread."""
    options = BatchOptions(output=tmp_path / "pairs.jsonl", progress=False)
    context = {"base_url": "http://127.0.0.1:9/v1", "model": "scripted", "max_rounds": 1}
    row = {"id": "s1", "prompt": "How do I open my own door?"}
    from_prompts = partial(read_preference_samples, [write_jsonl(tmp_path / "in.jsonl", [row])])
    crashing = preference_model(**{"BeliefAnswer": [RuntimeError("connection dropped")]})
    summary = run_batch(prefer_job(context, model=crashing), from_prompts, options)
    assert summary.failed == 1 and options.checkpoints.exists()  # deliberated, then the crash kept its thread

    from_generated = partial(
        read_preference_samples, [write_jsonl(tmp_path / "in.generated.jsonl", [{**row, **CHOSEN}])]
    )
    healthy = preference_model()
    summary = run_batch(prefer_job(context, model=healthy), from_generated, options)
    assert (summary.done, summary.resumed) == (1, 0)
    assert read_jsonl(options.output)[0]["chosen"] == CHOSEN
    assert "IntentAnswer" not in healthy.schemas()
