"""`aidsafe evaluate --labels`: the judge against people and people against each other, through the CLI
against the stub server, checked against the statistics computed here from the same libraries."""

from __future__ import annotations

import json
import random
import re
import sys
from collections import defaultdict

import numpy as np
import pytest

from tests.tiers import require

require("krippendorff", "agreement")  # before the imports that need it

import krippendorff
from scipy.stats import spearmanr
from sklearn.metrics import cohen_kappa_score

from aidsafe.cli.main import main
from aidsafe.state.evaluation import RUBRICS
from tests.fakes import StubServer, generate_record, schema_of, write_jsonl

pytestmark = pytest.mark.agreement

IDS = [f"r{i:02d}" for i in range(30)]
POLICIES = {i: ("physical_harm",) if n % 3 == 0 else ("illegal_activity", "fraud_deception") for n, i in enumerate(IDS)}
FLAGGED = {i for n, i in enumerate(IDS) if n % 4 == 0}
"""Records whose safety-gate verdict is `flagged`: the judge side of `response_safe` (0 = unsafe)."""


def judge_score(record_id: str, rubric: str) -> int:
    return 1 + (int(record_id[1:]) * 3 + RUBRICS.index(rubric)) % 5


def scripted_judge(request: dict) -> str:
    """The stub judge: a known score per (record, rubric), read from the grading prompt."""
    assert schema_of(request)["title"] == "RubricAnswer"
    text = "\n".join(str(m["content"]) for m in request["messages"])
    record_id = re.search(r"prompt (r\d\d)", text).group(1)
    rubric = re.search(r"Task: grading (\w+)\.", text).group(1)
    return json.dumps({"justification": "scripted", "score": judge_score(record_id, rubric)})


def people_labels() -> dict[tuple[str, str, str], int]:
    """(id, rubric, annotator) -> score: ann labels every record, bob the first 15 and cy 10-24 (on
    three rubrics and the marks), so samples 10-14 have three people, 0-9 and 15-24 two, 25-29 one.
    People mostly follow the judge, off by one now and then."""
    rng = random.Random(25)
    people = {"ann": IDS, "bob": IDS[:15], "cy": IDS[10:25]}
    labels = {}
    for annotator, ids in people.items():
        rubrics = RUBRICS if annotator != "cy" else RUBRICS[:3]
        for record_id in ids:
            for rubric in rubrics:
                labels[(record_id, rubric, annotator)] = min(5, max(1, judge_score(record_id, rubric) + rng.choice(
                    [0, 0, 0, 1, -1, 2])))  # fmt: skip
            for mark in ("response_safe", "thoughts_safe"):
                safe = 0 if record_id in FLAGGED else 1
                labels[(record_id, mark, annotator)] = safe if rng.random() < 0.85 else 1 - safe
    return labels


def line(record_id: str, rubric: str, annotator: str, score, minute: int = 0, **more) -> dict:
    return {"id": record_id, "rubric": rubric, "score": score, "annotator": annotator,
            "time": f"2026-12-01T10:{minute:02d}:00Z", **more}  # fmt: skip


@pytest.fixture
def labelled(tmp_path):
    records = []
    for record_id in IDS:
        record = generate_record(record_id, policy_ids=POLICIES[record_id])
        record["safety"] = {"score": 0.9 if record_id in FLAGGED else 0.1, "threshold": 0.5,
                            "flagged": record_id in FLAGGED}  # fmt: skip
        records.append(record)
    run = write_jsonl(tmp_path / "run.jsonl", records)
    truth = people_labels()
    lines: list = [line(*key, score, tool="by hand") for key, score in truth.items()]
    relevance = truth[("r01", "relevance", "ann")]
    problems = [
        b'{"id": "r02", "rubric": "relevance", "score": 3,',  # malformed: line 1 + len(truth)
        line("r02", "helpfulness", "ann", 3),  # unknown rubric
        line("r02", "coherence", "ann", 7),  # out of range for a rubric
        line("r02", "response_safe", "ann", 2),  # out of range for a mark
        line("r99", "relevance", "ann", 3),  # unknown id
        # ann changes her mind on r01 / relevance: the later time counts, whatever the line order
        line("r01", "relevance", "ann", 1 if relevance != 1 else 2, minute=5),
        line("r01", "relevance", "ann", 5 if relevance != 5 else 4, minute=1),
        line("r03", "coherence", "bob", truth[("r03", "coherence", "bob")], minute=9),  # the same again: no note
    ]
    truth[("r01", "relevance", "ann")] = 1 if relevance != 1 else 2
    labels = write_jsonl(tmp_path / "labels.jsonl", lines + problems)
    return run, labels, truth, len(lines)


def expected(truth: dict, rubric: str, ids=IDS) -> dict:
    """The statistics computed here: each person's label against the judge's score, alpha by hand
    from the reliability matrix (annotators x samples labelled by two or more)."""
    by_sample: dict[str, dict[str, int]] = defaultdict(dict)
    for (record_id, name, annotator), score in truth.items():
        if name == rubric and record_id in ids:
            by_sample[record_id][annotator] = score
    nominal = rubric.endswith("_safe")
    judge_side = {i: (0 if i in FLAGGED else 1) if nominal else judge_score(i, rubric) for i in ids}
    judge = [judge_side[i] for i, people in by_sample.items() for _ in people]
    people = [score for people in by_sample.values() for score in people.values()]
    shared = [p for p in by_sample.values() if len(p) > 1]
    names = sorted({a for p in shared for a in p})
    matrix = np.array([[p.get(a, np.nan) for p in shared] for a in names], dtype=float)
    scale = [0, 1] if nominal else [1, 2, 3, 4, 5]
    return {
        "pairs": len(people),
        "kappa": cohen_kappa_score(judge, people, labels=scale, weights="quadratic"),
        "rho": None if nominal else spearmanr(judge, people).statistic,
        "exact": float(np.mean(np.array(judge) == np.array(people))),
        "within_1": None if nominal else float(np.mean(np.abs(np.array(judge) - np.array(people)) <= 1)),
        "alpha": krippendorff.alpha(
            reliability_data=matrix, level_of_measurement="nominal" if nominal else "ordinal", value_domain=scale
        ),
        "shared": len(shared),
    }


@pytest.mark.report
@pytest.mark.slow
def test_agreement_through_the_cli_equals_the_statistics_computed_here(labelled, tmp_path, capsys):
    run, labels, truth, first_problem = labelled
    out = tmp_path / "eval"
    with StubServer(respond=scripted_judge) as server:
        code = main(["evaluate", str(run), "-o", str(out), "--base-url", server.base_url, "--labels", str(labels),
                     "--bootstrap-resamples", "100"])  # fmt: skip
    assert code == 1  # five label lines were unusable
    err = capsys.readouterr().err
    n = first_problem + 1
    assert f"skipped: {labels}:{n}: malformed: not a JSON line" in err
    assert f"skipped: {labels}:{n + 1}: unknown rubric: unknown rubric 'helpfulness'" in err
    assert f"skipped: {labels}:{n + 2}: out of range: score 7 is out of range for coherence (1-5)" in err
    assert f"skipped: {labels}:{n + 3}: out of range: score 2 is out of range for response_safe (0-1)" in err
    assert f"skipped: {labels}:{n + 4}: unknown id: id 'r99' is not among the evaluated records" in err
    assert f"note: {labels}:{n + 5}: relabelled: 'ann' scored 'r01' / relevance" in err
    assert err.count("relabelled") == 1  # the same score again is no disagreement

    summary = json.loads((out / "summary.json").read_text())
    found = summary["agreement"]
    assert found["labels"] == len(truth) and found["annotators"] == ["ann", "bob", "cy"] and found["samples"] == 30
    assert [(p["line"], p["kind"]) for p in found["problems"]] == [
        (n, "malformed"), (n + 1, "unknown rubric"), (n + 2, "out of range"), (n + 3, "out of range"),
        (n + 4, "unknown id"), (n + 5, "relabelled"),
    ]  # fmt: skip
    assert set(found["overall"]) == {*RUBRICS, "thoughts_safe", "response_safe"}
    for rubric in (*RUBRICS, "response_safe"):
        want, got = expected(truth, rubric), found["overall"][rubric]
        judge, people = got["judge"], got["people"]
        assert judge["pairs"] == want["pairs"] and judge["samples"] == 30
        assert round(judge["kappa"]["value"], 3) == round(want["kappa"], 3)
        assert round(judge["exact"]["value"], 3) == round(want["exact"], 3)
        if want["rho"] is not None:
            assert round(judge["rho"]["value"], 3) == round(want["rho"], 3)
            assert round(judge["within_1"]["value"], 3) == round(want["within_1"], 3)
        else:
            assert judge["rho"] is None and judge["within_1"] is None
        assert round(people["alpha"], 3) == round(want["alpha"], 3) and people["samples"] == want["shared"]
        for name in ("kappa", "exact"):
            assert judge[name]["low"] <= judge[name]["value"] <= judge[name]["high"]
    assert found["overall"]["relevance"]["people"]["samples"] == 25  # 0-24: two or three people
    assert found["overall"]["thoughts_safe"]["judge"] is None  # no judge verdict on thoughts: people only
    thoughts_alpha = expected(truth, "thoughts_safe")["alpha"]
    assert round(found["overall"]["thoughts_safe"]["people"]["alpha"], 3) == round(thoughts_alpha, 3)
    assert found["judged_marks"] == {"response_safe": "the safety gate's verdict on the response (`safety.flagged`)"}

    harm = [i for i in IDS if "physical_harm" in POLICIES[i]]
    per_policy = found["by_policy"]["physical_harm"]["coherence"]
    want = expected(truth, "coherence", harm)
    assert per_policy["judge"]["samples"] == len(harm) == 10
    assert round(per_policy["judge"]["kappa"]["value"], 3) == round(want["kappa"], 3)
    assert round(per_policy["people"]["alpha"], 3) == round(want["alpha"], 3)
    assert set(found["by_policy"]) == {"physical_harm", "illegal_activity", "fraud_deception"}

    report = (out / "report.md").read_text()
    kappa = found["overall"]["relevance"]["judge"]["kappa"]
    assert "## Agreement with people" in report and "## Agreement per policy" in report
    assert f"| relevance | {found['overall']['relevance']['labels']} | 30 (" in report
    assert f"{kappa['value']:.2f} [{kappa['low']:.2f}, {kappa['high']:.2f}]" in report
    assert f"- `{labels}:{n + 4}` unknown id:" in report
    assert (out / "charts" / "agreement.png").stat().st_size > 0
    assert "charts/agreement.png" in summary["charts"]

    # the dataset card of an export of the file shows the same table, from the evaluation's summary
    exported = tmp_path / "sft" / "run.sft.jsonl"
    exported.parent.mkdir()
    assert main(["export", str(run), "-o", str(exported), "--evaluation", str(out)]) == 0
    card = (exported.parent / "README.md").read_text()
    table = report[report.index("## Agreement with people") : report.index("![")].strip()
    assert table in card


def test_export_takes_only_an_evaluation_of_the_same_file_with_labels(tmp_path, capsys):
    run = write_jsonl(tmp_path / "run.jsonl", [generate_record("a")])
    other = write_jsonl(tmp_path / "other.jsonl", [generate_record("a")])
    assert main(["evaluate", str(run), "-o", str(tmp_path / "eval"), "--no-judge"]) == 0
    capsys.readouterr()
    assert main(["export", str(other), "--evaluation", str(tmp_path / "eval")]) == 2
    assert f"graded {run}, not {other}" in capsys.readouterr().err
    assert main(["export", str(run), "--evaluation", str(tmp_path / "eval")]) == 2
    assert "has no agreement: evaluate with --labels first" in capsys.readouterr().err
    assert main(["export", str(run), "--evaluation", str(tmp_path / "nowhere")]) == 2
    assert "not the summary of an `aidsafe evaluate`" in capsys.readouterr().err


def test_labels_without_a_judge_compare_people_only(labelled, tmp_path):
    run, labels, truth, _ = labelled
    out = tmp_path / "eval"
    assert (
        main(
            [
                "evaluate",
                str(run),
                "-o",
                str(out),
                "--no-judge",
                "--labels",
                str(labels),
                "--bootstrap-resamples",
                "100",
            ]
        )
        == 1
    )
    found = json.loads((out / "summary.json").read_text())["agreement"]
    assert found["overall"]["relevance"]["judge"] is None
    assert round(found["overall"]["relevance"]["people"]["alpha"], 3) == round(expected(truth, "relevance")["alpha"], 3)
    assert found["overall"]["response_safe"]["judge"]["pairs"] == expected(truth, "response_safe")["pairs"]


def test_bootstrap_resamples_needs_labels_and_a_missing_labels_file_is_a_usage_error(tmp_path, capsys):
    run = write_jsonl(tmp_path / "run.jsonl", [generate_record("a")])
    out = str(tmp_path / "out")
    assert main(["evaluate", str(run), "-o", out, "--no-judge", "--bootstrap-resamples", "200"]) == 2
    assert "--bootstrap-resamples applies to --labels" in capsys.readouterr().err
    assert main(["evaluate", str(run), "-o", out, "--no-judge", "--labels", str(tmp_path / "none.jsonl")]) == 2
    assert "none.jsonl" in capsys.readouterr().err


def test_labels_without_the_agreement_extra_say_what_to_install(tmp_path, capsys, monkeypatch):
    run = write_jsonl(tmp_path / "run.jsonl", [generate_record("a")])
    labels = write_jsonl(tmp_path / "labels.jsonl", [line("a", "relevance", "ann", 3)])
    monkeypatch.setitem(sys.modules, "krippendorff", None)  # as if not installed: find_spec returns None
    assert main(["evaluate", str(run), "-o", str(tmp_path / "out"), "--no-judge", "--labels", str(labels)]) == 2
    assert "--labels needs krippendorff: pip install 'aidsafe[agreement]'" in capsys.readouterr().err
