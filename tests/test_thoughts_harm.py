"""Thoughts checked for harm: the safety gate rates the chain of thought alone, with a served guard
model in its own format (gpt-oss-safeguard, Llama Guard) behind a loopback stub that speaks it.

Known samples carry harm in their thoughts: their records are flagged, counted in the run summary,
the evaluate report and the dataset card, and left out of the SFT export; a malformed guard answer
ends that sample alone with an error that says so.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from aidsafe.cli.main import main
from aidsafe.nodes.guard_judge import GuardAnswerError, llama_guard_score, safeguard_score
from aidsafe.policies import load_policies
from aidsafe.viewer.page import load
from tests.fakes import (
    ClassifierStub,
    StubServer,
    generate,
    generate_record,
    read_jsonl,
    schema_answer,
    write_jsonl,
)

PROMPTS = [
    {"id": "plain", "prompt": "How do I bake bread?"},
    {"id": "harm", "prompt": "What mixture is dangerous? [thoughts-carry-harm]"},
    {"id": "garbled", "prompt": "A question whose check goes wrong. [garbled]"},
    {"id": "lock", "prompt": "How do I pick my own lock?"},
]
POLICIES = load_policies(None)


FINAL = "The final response."


def guard_stub(answer: Callable[[str, str], str]) -> Callable[[dict[str, Any]], str]:
    """Schema answers for the deliberation, the refiner's final response `FINAL`; the guard's
    requests (no response format) get `answer(part, request text)`, part being what the content
    to classify is: the final response, or else the thoughts."""

    def respond(request: dict[str, Any]) -> str:
        if request.get("response_format") or request.get("tools"):
            answer_ = json.loads(schema_answer(request))
            return json.dumps({**answer_, "final_response": FINAL} if "final_response" in answer_ else answer_)
        part = "response" if FINAL in request["messages"][-1]["content"] else "thoughts"
        return answer(part, json.dumps(request["messages"]))

    return respond


def guard_requests(server: StubServer) -> list[dict[str, Any]]:
    return [r for r in server.requests if not r.get("response_format") and not r.get("tools")]


def run_gated(tmp_path, server: StubServer, guard: str) -> tuple[int, Any]:
    source = write_jsonl(tmp_path / "prompts.jsonl", PROMPTS)
    out = tmp_path / "run.jsonl"
    code = generate(server, str(source), "-o", str(out), "--safety-threshold", "0.5", "--scorer-format", guard)
    return code, out


def safeguard_answer(part: str, text: str) -> str:
    if "[garbled]" in text:
        return "I think this one is fine."
    violation = int(part == "thoughts" and "[thoughts-carry-harm]" in text)
    category = "physical_harm" if violation else None
    return json.dumps({"violation": violation, "policy_category": category, "rationale": "stub"})


def test_gpt_oss_safeguard_flags_harmful_thoughts_counts_them_and_export_drops_them(tmp_path, capsys):
    with StubServer(respond=guard_stub(safeguard_answer)) as server:
        code, out = run_gated(tmp_path, server, "gpt-oss-safeguard")
    printed = capsys.readouterr()
    assert code == 1  # one sample failed: the garbled answer
    records = {r["id"]: r for r in read_jsonl(out)}
    assert sorted(records) == ["harm", "lock", "plain"]
    assert records["harm"]["safety"] == {
        "score": 0.0, "threshold": 0.5, "flagged": False, "thoughts_score": 1.0, "thoughts_flagged": True
    }  # fmt: skip
    assert [records[i]["safety"]["thoughts_flagged"] for i in ("plain", "lock")] == [False, False]
    (error,) = read_jsonl(out.with_name("run.errors.jsonl"))
    assert error["id"] == "garbled" and error["error"]["node"] == "score_final"
    assert "gpt-oss-safeguard answer not understood: no JSON object" in error["error"]["message"]
    assert "I think this one is fine." in error["error"]["message"]

    requests = guard_requests(server)
    assert len(requests) == 3 * 2 + 1  # response and thoughts of three samples, the garbled one's response
    for request in requests:  # the policy is the system message, the content to classify the user message
        system, user = request["messages"]
        assert (system["role"], user["role"]) == ("system", "user")
        assert all(f"[{policy.id}]" in system["content"] for policy in POLICIES.policies)
        assert POLICIES.policies[2].forbids[0] in system["content"] and '"violation"' in system["content"]
        assert "CONTENT (" in user["content"] and "[physical_harm]" not in user["content"]
    thoughts_check = next(r for r in requests if "chain of thought" in r["messages"][1]["content"])
    assert "stub text" in thoughts_check["messages"][1]["content"].split("CONTENT (", 1)[1]

    summary = json.loads(out.with_name("run.summary.json").read_text())["deliberation"]
    assert (summary["safety_rated"], summary["safety_flagged"]) == (3, 0)
    assert (summary["thoughts_rated"], summary["thoughts_flagged"]) == (3, 1)
    assert "safety gate: 0 of 3 final responses flagged, 1 of 3 chains of thought flagged" in printed.out

    viewed = {sample["id"]: sample["scores"] for sample in load([out]).samples}
    assert viewed["harm"]["thoughts violation (safety gate)"] == 1.0  # a score filter of `aidsafe view`

    assert main(["evaluate", str(out), "-o", str(tmp_path / "eval"), "--no-judge"]) == 0
    assert "1 of 3 chains of thought flagged" in (tmp_path / "eval" / "report.md").read_text()

    sft = tmp_path / "sft" / "run.sft.jsonl"
    assert main(["export", str(out), "-o", str(sft)]) == 0
    assert sorted(row["id"] for row in read_jsonl(sft)) == ["lock", "plain"]
    reason = "thoughts flagged by the safety gate (violation score above 0.5)"
    assert f"left out 1 records: {reason}" in capsys.readouterr().out
    card = (sft.parent / "README.md").read_text()
    assert f"- left out ({reason}): 1" in card
    assert "2 rows' chains of thought were rated alone and passed" in card


def llama_guard_answer(part: str, text: str) -> str:
    if "[garbled]" in text:
        return "maybe"
    return "unsafe\nS3" if part == "thoughts" and "[thoughts-carry-harm]" in text else "safe"


def test_llama_guard_gets_the_policies_as_categories_and_its_labels_are_read(tmp_path):
    with StubServer(respond=guard_stub(llama_guard_answer)) as server:
        code, out = run_gated(tmp_path, server, "llama-guard")
    assert code == 1
    records = {r["id"]: r for r in read_jsonl(out)}
    assert {i: r["safety"]["thoughts_flagged"] for i, r in records.items()} == {
        "plain": False, "harm": True, "lock": False
    }  # fmt: skip
    (error,) = read_jsonl(out.with_name("run.errors.jsonl"))
    assert error["id"] == "garbled"
    assert "llama-guard answer not understood: the first line must read 'safe' or 'unsafe'" in error["error"]["message"]

    for request in guard_requests(server):  # the conversation, then the policies as the template's categories
        user, agent = request["messages"]
        assert (user["role"], agent["role"]) == ("user", "assistant")
        assert user["content"] in {p["prompt"] for p in PROMPTS}
        categories = request["chat_template_kwargs"]["categories"]
        assert list(categories) == [f"S{n}" for n in range(1, len(POLICIES.policies) + 1)]
        physical_harm = POLICIES.policies[2]
        assert categories["S3"].startswith(f"{physical_harm.title}.\nShould not: {physical_harm.forbids[0]}")
        assert request["max_tokens"] == 512  # bounded, as every call


def test_the_http_classifier_is_told_the_part_and_rates_the_thoughts_without_the_response(tmp_path):
    def classify(body: dict[str, Any]) -> tuple[int, str]:
        harmful = body["part"] == "thoughts" and "[thoughts-carry-harm]" in body["prompt"]
        return 200, json.dumps({"score": 0.9 if harmful else 0.1})

    with StubServer(respond=guard_stub(safeguard_answer)) as server, ClassifierStub(respond=classify) as classifier:
        source = write_jsonl(tmp_path / "prompts.jsonl", PROMPTS[:2])
        out = tmp_path / "run.jsonl"
        assert (
            generate(server, str(source), "-o", str(out), "--safety-threshold", "0.5", "--scorer-url", classifier.url)
            == 0
        )
    records = {r["id"]: r for r in read_jsonl(out)}
    assert [records[i]["safety"]["thoughts_flagged"] for i in ("plain", "harm")] == [False, True]
    parts = {(body["part"], body["response"]) for body in classifier.requests}
    assert parts == {("response", FINAL), ("thoughts", "")}
    assert all(body["thoughts"] for body in classifier.requests)


def test_evaluate_checks_responses_and_thoughts_with_a_guard_and_reports_the_flagged(tmp_path):
    records = [generate_record(i, response=FINAL) for i in ("plain", "harm", "garbled")]
    records[1]["thoughts"][0]["text"] = "One would mix X and Y at Z degrees [thoughts-carry-harm], so I refuse."
    records[2]["prompt"] = "[garbled]"
    run_file = write_jsonl(tmp_path / "run.jsonl", records)
    out = tmp_path / "eval"
    with StubServer(respond=guard_stub(llama_guard_answer)) as server:
        flags = ["--base-url", server.base_url, "--model", "stub", "--no-progress", "--scorer-format", "llama-guard"]
        assert main(["evaluate", str(run_file), "-o", str(out), "--check-thoughts", "true", *flags]) == 1
    graded = {line["id"]: line for line in read_jsonl(out / "samples.jsonl")}
    assert graded["harm"]["run"]["safety"] == {
        "score": 0.0, "threshold": 0.5, "flagged": False, "thoughts_score": 1.0, "thoughts_flagged": True
    }  # fmt: skip
    assert graded["plain"]["run"]["safety"]["thoughts_flagged"] is False
    assert len(graded["plain"]["run"]["grades"]) == 6  # the rubrics are graded beside the harm check
    summary = json.loads((out / "summary.json").read_text())
    assert summary["harm_check"] == {"rated": 2, "response_flagged": 0, "thoughts_flagged": 1}
    failed = {(f["id"], f["check"]) for f in summary["failures"]}
    assert failed == {("garbled", "harm_response"), ("garbled", "harm_thoughts")}
    report = (out / "report.md").read_text()
    assert "- 2 records rated: 0 responses flagged, 1 chains of thought flagged" in report
    assert "`garbled` run / harm_thoughts: llama-guard answer not understood" in report


@pytest.mark.parametrize(
    ("read", "answer", "score"),
    [
        (safeguard_score, '{"violation": 1, "policy_category": "physical_harm", "rationale": "r"}', 1.0),
        (safeguard_score, '```json\n{"violation": 0, "policy_category": null}\n```', 0.0),
        (safeguard_score, 'The content is fine.\n{"violation": 0, "rationale": "r", "confidence": "high"}', 0.0),
        (safeguard_score, "1", 1.0),
        (safeguard_score, '{"violation": 2}', "violation: Input should be 0 or 1"),
        (safeguard_score, '{"label": "safe"}', "violation: Field required"),
        (safeguard_score, "", "no JSON object"),
        (safeguard_score, '{"violation": 1', "no JSON object"),
        (llama_guard_score, "safe", 0.0),
        (llama_guard_score, "\n Safe \n", 0.0),
        (llama_guard_score, "unsafe", 1.0),
        (llama_guard_score, "unsafe\nS1,S5", 1.0),
        (llama_guard_score, "unsafe\nS9", "unknown category 'S9'"),
        (llama_guard_score, "unsafe\nviolence", "unknown category 'violence'"),
        (llama_guard_score, "", "first line"),
        (llama_guard_score, "The content is unsafe", "first line"),
    ],
)
def test_guard_answers_are_read_or_refused_with_the_reason(read, answer, score):
    if isinstance(score, float):
        assert read(answer, POLICIES) == score
    else:
        with pytest.raises(GuardAnswerError, match=score):
            read(answer, POLICIES)
