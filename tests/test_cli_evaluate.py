"""`aidsafe evaluate` end to end through the CLI, against the stub server and the embedded model."""

from __future__ import annotations

import json

import pytest

from aidsafe.cli.main import main
from aidsafe.nodes.templates import template
from aidsafe.state.evaluation import RUBRICS
from tests.fakes import StubServer, generate_record, schema_answer, schema_of, write_jsonl


@pytest.fixture
def files(tmp_path):
    run = write_jsonl(
        tmp_path / "run.jsonl",
        [
            generate_record("a"),
            generate_record("b", response="I can't help with that."),
            b"{not json",
            {"id": "c", "error": {"node": "initializer", "message": "timeout"}, "prompt": "p"},
            generate_record("a"),
            b"\xff\xfe broken bytes",
            generate_record("d"),
        ],
    )
    baseline = write_jsonl(tmp_path / "baseline.jsonl", [generate_record(i, response="Sure.") for i in "abd"])
    return run, baseline


@pytest.mark.report
def test_evaluate_with_baseline_over_http(files, tmp_path, stub_server, capsys):
    run, baseline = files
    out = tmp_path / "report"
    code = main(
        ["evaluate", str(run), "--baseline", str(baseline), "--out", str(out), "--base-url", stub_server.base_url,
         "--model", "stub-judge", "--concurrency", "3", "--temperature", "0"]
    )  # fmt: skip
    assert code == 1  # unusable lines were skipped: the exit code says so
    err = capsys.readouterr().err
    assert f"{run}:3: not JSON" in err and f"{run}:4: " in err and f"{run}:5: id 'a' repeats line 1" in err
    assert f"{run}:6: not UTF-8" in err

    summary = json.loads((out / "summary.json").read_text())
    assert summary["samples"] == {"run": 3, "baseline": 3, "paired": 3}
    assert [b["line"] for b in summary["bad_lines"]] == [3, 4, 5, 6]
    assert "errors-file line" in summary["bad_lines"][1]["message"]
    assert summary["failures"] == []
    assert summary["pairwise"]["n"] == 3
    assert summary["metrics"]["refusal"]["run"] == pytest.approx(1 / 3)
    assert summary["metrics"]["refusal"]["baseline"] == 0
    assert set(summary["metrics"]) >= set(RUBRICS)
    assert len(stub_server.requests) == 3 * (2 * 6 + 1) == summary["usage"]["llm_calls"]
    assert {r["model"] for r in stub_server.requests} == {"stub-judge"}
    assert {r["temperature"] for r in stub_server.requests} == {0.0}

    report = (out / "report.md").read_text()
    assert "| metric | baseline | AIDSAFE | relative change |" in report
    assert "## Pairwise" in report and f"`{run}:3`: not JSON" in report
    assert (out / "charts" / "scores.png").stat().st_size > 0
    assert (out / "charts" / "pairwise.png").stat().st_size > 0
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert sorted(s["id"] for s in samples) == ["a", "b", "d"]
    assert set(samples[0]["run"]["grades"]) == set(RUBRICS) == set(samples[0]["baseline"]["grades"])
    assert not list(out.glob("samples.checkpoints*"))  # nothing left to resume
    assert json.loads((out / "samples.summary.json").read_text())["done"] == 3


def test_failed_grades_are_listed_never_dropped(tmp_path):
    coherence_rubric = template("rubric_coherence").template.strip()

    def garbage_for_coherence(request):
        grading_coherence = schema_of(request)["title"] == "RubricAnswer" and any(
            coherence_rubric in message["content"] for message in request["messages"]
        )
        return "not json" if grading_coherence else schema_answer(request)

    run = write_jsonl(tmp_path / "run.jsonl", [generate_record("a"), generate_record("b")])
    with StubServer(respond=garbage_for_coherence) as server:
        code = main(
            [
                "evaluate",
                str(run),
                "--out",
                str(tmp_path / "out"),
                "--base-url",
                server.base_url,
                "--parse-retries",
                "0",
            ]
        )
    assert code == 1
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [(f["id"], f["side"], f["check"]) for f in summary["failures"]] == [
        ("a", "run", "coherence"),
        ("b", "run", "coherence"),
    ]
    assert summary["metrics"]["relevance"]["n_run"] == 2 and "coherence" not in summary["metrics"]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Failed grades (2)" in report and "- `b` run / coherence: no valid RubricAnswer" in report
    errors = [json.loads(line) for line in (tmp_path / "out" / "samples.errors.jsonl").read_text().splitlines()]
    assert sorted(e["id"] for e in errors) == ["a", "b"]  # the next run grades them again
    assert "run / coherence: no valid RubricAnswer" in errors[0]["error"]["message"]


def test_server_down_fails_every_grade_but_writes_the_report(tmp_path):
    run = write_jsonl(tmp_path / "run.jsonl", [generate_record("a")])
    with StubServer(fail_first=1000, fail_status=500) as server:
        code = main(["evaluate", str(run), "--out", str(tmp_path / "out"), "--base-url", server.base_url,
                     "--http-retries", "0"])  # fmt: skip
    assert code == 1
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert {f["check"] for f in summary["failures"]} == set(RUBRICS)
    assert all("model server failed" in f["message"] for f in summary["failures"])
    assert summary["metrics"]["thoughts"]["run"] == 1  # the deterministic metrics are still there


def test_no_judge_makes_no_model_calls_and_limit_takes_the_first_records(files, tmp_path):
    run, baseline = files
    out = tmp_path / "out"
    code = main(["evaluate", str(run), "--baseline", str(baseline), "--out", str(out), "--no-judge", "--limit", "2",
                 "--base-url", "http://127.0.0.1:9/v1"])  # fmt: skip
    assert code == 0  # the two records come before the unusable lines, which are not read
    summary = json.loads((out / "summary.json").read_text())
    assert summary["samples"] == {"run": 2, "baseline": 2, "paired": 2}
    assert summary["judge"] is None and summary["usage"]["llm_calls"] == 0 and summary["bad_lines"] == []
    assert set(summary["metrics"]) == {"thoughts", "cot_words", "redundancy", "policy_coverage", "refusal"}
    assert summary["metrics"]["policy_coverage"]["run"] == pytest.approx(0.2)
    assert not (out / "charts").exists()
    assert "| Thoughts per sample | 1.00 | 1.00 | +0.0% |" in (out / "report.md").read_text()
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2


def test_preference_file_reports_the_score_gap(tmp_path):
    pair = {"chosen": {"thoughts": ["Good."], "response": "Sure."}, "rejected": {"thoughts": ["Bad."], "response": "x"}}
    run = write_jsonl(
        tmp_path / "prefs.jsonl",
        [{"id": "p1", "prompt": "p", **pair, "chosen_score": 0.1, "rejected_score": 0.9, "negative_example": True},
         {"id": "p2", "prompt": "p", **pair, "chosen_score": 0.4, "rejected_score": 0.8, "negative_example": True}],
    )  # fmt: skip
    assert main(["evaluate", str(run), "--out", str(tmp_path / "out"), "--no-judge"]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["metrics"]["score_gap"]["run"] == pytest.approx(0.6)
    assert "| Score gap (rejected − chosen violation) | – | 0.60 | – |" in (tmp_path / "out" / "report.md").read_text()


def test_unreadable_file_is_a_clear_error(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "out"), "--no-judge"]) == 2
    assert "missing.jsonl: cannot read" in capsys.readouterr().err


@pytest.mark.embedded
def test_baseline_then_evaluate_on_the_embedded_model(tmp_path):
    """Structure only: a 135M model's grades mean nothing. One baseline call, then six grades."""
    from aidsafe.embedded import EmbeddedServer
    from aidsafe.graphs.baseline import graph as baseline_graph

    with EmbeddedServer(n_threads=2) as server:
        context = {"base_url": server.base_url, "max_tokens": 160}
        baseline = baseline_graph.invoke(
            {"prompt": "How do I kill a hanging Python process?", "id": "k"}, context=context
        )
        assert baseline["error"] is None and baseline["stop_reason"] == "baseline" and baseline["thoughts"]
        run = write_jsonl(tmp_path / "baseline.jsonl", [baseline])
        code = main(["evaluate", str(run), "--out", str(tmp_path / "out"), "--base-url", server.base_url,
                     "--max-tokens", "160", "--parallel-calls", "1", "--parse-retries", "1"])  # fmt: skip
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    failed = {(f["side"], f["check"]) for f in summary["failures"]}
    graded = (tmp_path / "out" / "samples.jsonl").read_text().splitlines()
    errors = (tmp_path / "out" / "samples.errors.jsonl").read_text().splitlines()
    (sample,) = [json.loads(line) for line in graded] or [json.loads(line)["partial"] for line in errors]
    for rubric in RUBRICS:  # every grade is there or listed as failed (a 135M judge can loop)
        grade = sample["run"]["grades"].get(rubric)
        assert ("run", rubric) in failed or (grade["score"] in range(1, 6) and grade["justification"])
    assert code == (1 if failed else 0)
    assert summary["usage"]["llm_calls"] >= 6 and (tmp_path / "out" / "report.md").exists()
    print(f"\nembedded evaluate: {summary['seconds']} s for 1 record, {summary['usage']['llm_calls']} calls")
