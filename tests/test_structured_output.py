"""Which request form each server gets for a structured answer, through `aidsafe` commands against
stand-ins that say what they are as the real servers do (`tests/fakes.py`), and every schema aidsafe
sends compiled by the grammar engines behind vLLM and SGLang (xgrammar, llguidance).

The schemas are the ones the servers received over whole runs of every command that asks for
structured answers, each call's first answer cut off so that its re-ask (the `brief_schema`) is
sent too: a new answer schema, or a change to one, is in the check without a line here.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aidsafe.cli.main import main
from aidsafe.nodes.agent import template
from aidsafe.state.answers import strict_schema
from tests.fakes import (
    STUB_BELIEF,
    LlamaCppPythonStandIn,
    OpenAIStrictStandIn,
    RandomSchemaAnswers,
    StubServer,
    VllmStandIn,
    prompts,
    read_jsonl,
    schema_answer,
    schema_of,
    strict_answer,
    strict_mode_problems,
    write_jsonl,
)
from tests.test_bench import write_prompts

CUT_OFF_REASK = template("reask_cut_off").template.split("$")[0]


def first_attempt(request: dict[str, Any]) -> bool:
    """Not the re-ask after a cut-off: cut this one off, so that the re-ask is sent."""
    return bool(request.get("response_format")) and CUT_OFF_REASK not in str(request["messages"][-1]["content"])


def with_belief(answer: Callable[[dict[str, Any]], str]) -> Callable[[dict[str, Any]], str]:
    """`answer`, but the whisperer's belief is text no other answer holds (else every whispered
    answer repeats it and is re-asked)."""

    def respond(request: dict[str, Any]) -> str:
        return json.dumps({"belief": STUB_BELIEF}) if schema_of(request)["title"] == "BeliefAnswer" else answer(request)

    return respond


def run(server: StubServer, command: str, *args: str) -> int:
    base = ["--base-url", server.base_url, "--model", "stub-model", "--no-progress", "--http-retries", "0"]
    return main([command, *args, *base])


def run_every_command(server: StubServer, folder: Path) -> dict[str, int]:
    """`generate` (with the safety gate), `generate --baseline`, `evaluate` of both, `prefer`: exit codes."""
    inputs = write_jsonl(folder / "in.jsonl", prompts(2))
    run_file, baseline = folder / "run.jsonl", folder / "baseline.jsonl"
    return {
        "generate": run(server, "generate", str(inputs), "-o", str(run_file), "--safety-threshold", "0.9"),
        "baseline": run(server, "generate", str(inputs), "-o", str(baseline), "--baseline"),
        "evaluate": run(server, "evaluate", str(run_file), "--baseline", str(baseline), "-o", str(folder / "eval")),
        "prefer": run(server, "prefer", str(inputs), "-o", str(folder / "prefer.jsonl"), "--max-rounds", "1"),
    }


def forms(server: StubServer) -> set[tuple[str, bool, bool]]:
    """(response_format type, strict, a schema inside json_object) of every request."""
    found = set()
    for request in server.requests:
        fmt = request["response_format"]
        found.add((fmt["type"], bool(fmt.get("json_schema", {}).get("strict")), "schema" in fmt))
    return found


@pytest.mark.parametrize(
    ("server_class", "form"),
    [
        (VllmStandIn, ("json_schema", False, False)),
        (LlamaCppPythonStandIn, ("json_object", False, True)),
        (StubServer, ("json_schema", False, False)),  # says nothing of itself: json_schema
    ],
    ids=["vllm", "llama-cpp-python", "unknown"],
)
def test_each_server_gets_the_form_it_enforces(tmp_path, server_class, form):
    inputs = write_jsonl(tmp_path / "in.jsonl", prompts(2))
    with server_class() as server:
        assert run(server, "generate", str(inputs), "-o", str(tmp_path / "out.jsonl")) == 0
    assert forms(server) == {form}
    assert len(read_jsonl(tmp_path / "out.jsonl")) == 2


def test_what_vllm_does_with_llama_cpps_form(tmp_path):
    """What `auto` avoids: vLLM answers any JSON object to `json_object`, and no sample survives."""
    inputs = write_jsonl(tmp_path / "in.jsonl", prompts(2))
    with VllmStandIn() as server:
        out = str(tmp_path / "out.jsonl")
        assert run(server, "generate", str(inputs), "-o", out, "--structured-output", "json_object") == 1
    assert forms(server) == {("json_object", False, True)}
    assert [e["error"]["node"] for e in read_jsonl(tmp_path / "out.errors.jsonl")] == ["initializer"] * 2


@pytest.mark.slow
def test_every_request_to_openai_passes_its_strict_mode(tmp_path):
    """Whole runs of every command, each call cut off once: the brief re-asks pass strict mode too,
    and answers with every property (null where allowed) parse."""
    with OpenAIStrictStandIn(respond=with_belief(strict_answer), cut_off=first_attempt) as server:
        codes = run_every_command(server, tmp_path)
    assert server.refused == []
    assert codes == {"generate": 0, "baseline": 0, "evaluate": 0, "prefer": 0}
    assert forms(server) == {("json_schema", True, False)}
    assert len(read_jsonl(tmp_path / "prefer.jsonl")) == 2
    briefs = [r for r in server.requests if not first_attempt(r)]
    assert briefs and all(re.search(r"t most \d+ characters", json.dumps(schema_of(r))) for r in briefs)


def test_the_strict_mode_stand_in_refuses_what_openai_refuses():
    """The checks the stand-in makes can fail: aidsafe's schemas pass them only in their strict form."""
    from aidsafe.state.answers import AnswerContext, DeliberatorAnswer, answer_schema

    schema = answer_schema(DeliberatorAnswer, AnswerContext(policy_ids=("a",), thought_ids=(0,)))
    as_sent = {"type": "json_schema", "json_schema": {"name": "DeliberatorAnswer", "strict": True, "schema": schema}}
    problems = " ".join(strict_mode_problems(as_sent))
    assert "additionalProperties is not false" in problems and "not every property is required" in problems
    assert "['minLength'] not permitted" in problems


# --------------------------------------------------------------------------------------------
# Every schema, compiled by the grammar engines of vLLM and SGLang


def subject_or_judge(request: dict[str, Any]) -> str:
    """`aidsafe bench`'s model under test answers plain text; its judge, in the schema it is sent."""
    return schema_answer(request) if request.get("response_format") else "I can't help with that."


def sent_schemas(tmp_path: Path) -> dict[str, dict[str, Any]]:
    """Every distinct schema the servers received over whole runs of every command, by its JSON."""
    with StubServer(respond=with_belief(RandomSchemaAnswers()), cut_off=first_attempt) as server:
        run_every_command(server, tmp_path)  # random answers: thoughts, rounds and ids vary
    with StubServer(respond=subject_or_judge, cut_off=first_attempt) as bench_server:
        url = bench_server.base_url
        args = ["bench", str(write_prompts(tmp_path / "bench.jsonl")), "--out", str(tmp_path / "bench")]
        assert (
            main([*args, "--model", f"subject@{url}", "--base-url", url, "--judge-model", "judge", "--no-progress"])
            == 0
        )
    requests = [r for r in [*server.requests, *bench_server.requests] if r.get("response_format")]
    found = {json.dumps(schema_of(r), sort_keys=True): schema_of(r) for r in requests}
    return found


def compile_errors(schema: dict[str, Any]) -> list[str]:
    """What xgrammar (vLLM's default backend, SGLang's) and llguidance (vLLM's `guidance`, SGLang's
    `llguidance`) say against `schema`: empty when both compile it."""
    import llguidance
    import xgrammar

    text = json.dumps(schema)
    errors = []
    try:
        xgrammar.Grammar.from_json_schema(text, strict_mode=True)
    except RuntimeError as exc:
        errors.append(f"xgrammar: {exc}")
    if message := llguidance.LLMatcher.validate_grammar(llguidance.grammar_from("json_schema", text)):
        errors.append(f"llguidance: {message}")
    return errors


@pytest.mark.grammars
def test_every_schema_aidsafe_sends_compiles_in_xgrammar_and_llguidance(tmp_path):
    schemas = sent_schemas(tmp_path)
    titles = {schema["title"] for schema in schemas.values()}
    assert {"IntentAnswer", "SeedAnswer", "DeliberatorAnswer", "RefinerAnswer", "ViolationAnswer"} <= titles
    assert {"BeliefAnswer", "WhisperedAnswer", "RubricAnswer", "PairwiseAnswer", "HarmAnswer"} <= titles
    assert any('"maxLength": 400' in key for key in schemas)  # the brief re-asks' schemas
    failures = {}
    for key, schema in schemas.items():
        for form, sent in (("as sent", schema), ("strict", strict_schema(schema))):
            if errors := compile_errors(sent):
                failures[f"{schema['title']} {form}: {key[:120]}"] = errors
    assert failures == {}
    by_title = Counter(schema["title"] for schema in schemas.values())
    assert by_title["DeliberatorAnswer"] > 2 and by_title["RefinerAnswer"] > 2  # per-call id enums, brief forms


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"a": {"type": "strin"}}},
        {"type": "object", "properties": {"a": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}}},
    ],
)
@pytest.mark.grammars
def test_a_schema_a_server_refuses_fails_the_check(schema):
    assert compile_errors(schema)
