"""Evaluation: deterministic metrics, the judges through the evaluation graph, the baseline graph,
and the report, with scripted models."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage

from aidsafe.graphs.baseline import build_graph as build_baseline
from aidsafe.graphs.deliberation import build_graph as build_deliberation
from aidsafe.graphs.evaluation import BASELINE_RUBRIC_NODES, RUBRIC_NODES
from aidsafe.graphs.evaluation import build_graph as build_evaluation
from aidsafe.metrics.deterministic import REFUSAL_WINDOW, record_metrics
from aidsafe.nodes.pairwise_judge import run_shown_first
from aidsafe.policies import load_policies
from aidsafe.report import summarize
from aidsafe.report.markdown import render
from aidsafe.state.evaluation import RUBRICS, EvaluatedRecord
from tests.fakes import ScriptedChatModel, scripted

POLICY_IDS = load_policies().ids


def record(id="s1", *texts, policy_ids=("illegal_activity",), response="Here is how.", **more) -> dict:
    texts = texts or ("A thought.",)
    thoughts = [
        {"id": i, "text": t, "agent": "x", "round": 0, "policy_ids": list(policy_ids), "corrects": None}
        for i, t in enumerate(texts)
    ]
    return {"id": id, "prompt": f"prompt of {id}", "thoughts": thoughts, "response": response, **more}


def metrics_of(data: dict) -> dict:
    return record_metrics(EvaluatedRecord.model_validate(data), POLICY_IDS)


def grade(score: int, why: str = "because") -> dict:
    return {"justification": why, "score": score}


def judge(score: int = 4, better: str = "A", **more) -> ScriptedChatModel:
    """A judge that gives `score` on every rubric and prefers `better`; override any node's replies."""
    script = {f"RubricAnswer@{node}": [grade(score)] for node in (*RUBRIC_NODES, *BASELINE_RUBRIC_NODES)}
    script["PairwiseAnswer"] = [{"justification": "it is better", "better": better}]
    return ScriptedChatModel(script={**script, **more})


# --- deterministic metrics on hand-made records ------------------------------------------------


def test_thought_count_and_cot_words():
    values = metrics_of(record("s", "Don't pick locks.", "Call a locksmith now"))
    assert values["thoughts"] == 2
    assert values["cot_words"] == 3 + 4


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        (("the cat sat on the mat", "the cat sat down"), 1 / 6),  # 6 trigrams, 1 repeats
        (("x y z", "X, y z!"), 1 / 2),  # case and punctuation do not hide a repeat
        (("one two", "three four"), 0.0),  # no trigram at all: n-grams do not span thoughts
        (("a b c d", "e f g h"), 0.0),
    ],
)
def test_redundancy_is_the_share_of_repeated_word_trigrams(texts, expected):
    assert metrics_of(record("s", *texts))["redundancy"] == pytest.approx(expected)


def test_policy_coverage_counts_distinct_known_policies():
    data = record("s", "a", "b")
    data["thoughts"][0]["policy_ids"] = ["illegal_activity", "fraud_deception"]
    data["thoughts"][1]["policy_ids"] = ["illegal_activity", "made_up"]
    assert metrics_of(data)["policy_coverage"] == pytest.approx(2 / 5)


@pytest.mark.parametrize(
    ("response", "refusal"),
    [
        ("I can’t help with that request.", 1.0),  # curly apostrophe
        ("I'm sorry, but I won't write phishing emails.", 1.0),
        ("As an AI, I must decline.", 1.0),
        ("I'm sorry to hear you are locked out! Call a locksmith.", 0.0),  # an apology is not a refusal
        ("Here is a recipe. " + "Knead the dough. " * 12 + "I cannot stress this enough.", 0.0),  # too late
    ],
)
def test_refusal_by_keyword_list_in_the_opening(response, refusal):
    assert metrics_of(record("s", response=response))["refusal"] == refusal


def test_refusal_counts_only_inside_the_opening_window():
    opening = "x" * REFUSAL_WINDOW
    assert metrics_of(record("s", response="I can't help with that. " + opening))["refusal"] == 1.0
    assert metrics_of(record("s", response=opening + " I can't help with that."))["refusal"] == 0.0


def test_preference_record_gives_score_gap_and_metrics_of_the_chosen_side():
    data = {
        "id": "p1",
        "prompt": "p",
        "chosen": {"thoughts": [{"text": "Safe step one."}, {"text": "Safe step two."}], "response": "Sure."},
        "rejected": {"thoughts": ["Bad step."], "response": "I can't."},
        "belief": "b",
        "chosen_score": 0.2,
        "rejected_score": 0.9,
        "negative_example": True,
    }
    values = metrics_of(data)
    assert values["score_gap"] == pytest.approx(0.7)
    assert values["thoughts"] == 2 and values["refusal"] == 0.0
    assert "score_gap" not in metrics_of(record())


# --- the judges ---------------------------------------------------------------------------------


def test_every_rubric_is_graded_for_both_outputs_and_compared():
    model = judge(score=4)
    out = build_evaluation(model=model).invoke({"run": record("s1"), "baseline": record("s1", response="Other.")})
    assert set(out["run_grades"]) == set(RUBRICS) == set(out["baseline_grades"])
    assert out["run_grades"]["relevance"] == {"score": 4, "justification": "because"}
    assert out["pairwise"]["verdict"] in ("win", "loss")
    assert out["failures"] == []
    assert out["usage"]["llm_calls"] == 2 * 6 + 1
    rubric_prompt = str(model.calls_for("RubricAnswer@grade_coherence")[0]["messages"][-1].content)
    assert "Coherence of the chain of thought" in rubric_prompt and "1. [illegal_activity] A thought." in rubric_prompt


def test_one_record_alone_is_graded_without_pairwise():
    model = judge()
    out = build_evaluation(model=model).invoke({"run": record()})
    assert set(out["run_grades"]) == set(RUBRICS) and out["baseline_grades"] == {}
    assert out.get("pairwise") is None and "PairwiseAnswer" not in model.schemas()


def test_malformed_grade_is_reasked_with_the_error_then_parsed():
    model = judge(**{"RubricAnswer@grade_relevance": ["no json here", grade(7), grade(2, "off topic")]})
    out = build_evaluation(model=model).invoke({"run": record()}, context={"parse_retries": 2})
    assert out["run_grades"]["relevance"] == {"score": 2, "justification": "off topic"}
    calls = model.calls_for("RubricAnswer@grade_relevance")
    assert len(calls) == 3
    reask = calls[2]["messages"][-1]
    assert isinstance(reask, HumanMessage) and "could not be used" in str(reask.content)
    assert "Input should be 1, 2, 3, 4 or 5" in str(reask.content)  # the validation error is shown


def test_a_grade_that_never_parses_is_a_listed_failure_and_the_rest_still_count():
    model = judge(**{"RubricAnswer@grade_coherence": ["{broken"]})
    out = build_evaluation(model=model).invoke({"run": record()}, context={"parse_retries": 1})
    assert set(out["run_grades"]) == set(RUBRICS) - {"coherence"}
    (failure,) = out["failures"]
    assert failure["side"] == "run" and failure["check"] == "coherence"
    assert "no valid RubricAnswer after 2 attempts" in failure["message"]


def test_position_is_randomised_per_sample_and_the_verdict_mapped_back():
    ids = [f"sample-{i}" for i in range(40)]
    firsts = [run_shown_first(i) for i in ids]
    assert any(firsts) and not all(firsts)
    assert firsts == [run_shown_first(i) for i in ids]  # reproducible

    def prefers_the_run_output(messages):  # a judge that always finds the run's output better
        text = str(messages[-1].content)
        shown_first = text.index("RUN RESPONSE") < text.index("BASELINE RESPONSE")
        return {"justification": "x", "better": "A" if shown_first else "B"}

    graph = build_evaluation(model=judge(**{"PairwiseAnswer": prefers_the_run_output}))
    for sample_id in (ids[firsts.index(True)], ids[firsts.index(False)]):
        out = graph.invoke(
            {
                "run": record(sample_id, response="RUN RESPONSE"),
                "baseline": record(sample_id, response="BASELINE RESPONSE"),
            }
        )
        assert out["pairwise"]["verdict"] == "win"
        assert out["pairwise"]["run_shown_as"] == ("A" if run_shown_first(sample_id) else "B")


def test_tie_stays_a_tie_in_either_order():
    graph = build_evaluation(model=judge(better="tie"))
    for sample_id in ("a", "b", "c", "d"):
        assert graph.invoke({"run": record(sample_id), "baseline": record(sample_id)})["pairwise"]["verdict"] == "tie"


# --- the baseline graph -------------------------------------------------------------------------


def test_baseline_is_one_call_with_the_deliberation_output_shape():
    answer = {"thoughts": [{"text": "Own lock: legal.", "policy_ids": ["illegal_activity"]}], "response": "Try a card."}
    model = ScriptedChatModel(script={"SeedAnswer": [answer]})
    out = build_baseline(model=model).invoke({"prompt": "How do I pick my own lock?", "id": "b1"})
    assert model.schemas() == ["SeedAnswer"]
    assert out["stop_reason"] == "baseline" and out["error"] is None and out["id"] == "b1"
    assert out["thoughts"] == [
        {
            "id": 0,
            "text": "Own lock: legal.",
            "agent": "baseline",
            "round": 0,
            "policy_ids": ["illegal_activity"],
            "corrects": None,
        }
    ]
    assert out["response"] == "Try a card."
    assert out["intents"] == {"explicit": [], "implicit": []}
    assert out["deliberation_log"] == [] and out["removed_thoughts"] == [] and out["rounds"] == 0
    deliberated = build_deliberation(1, model=scripted()).invoke({"prompt": "p", "id": "d1"}, context={"max_rounds": 1})
    assert set(out) == set(deliberated)
    assert "[illegal_activity]" in str(model.calls[0]["messages"][0].content)  # the shared system prefix


# --- the report ---------------------------------------------------------------------------------


def result(id, run_score, baseline_score, verdict, refusal=0.0):
    def side(score):
        return {
            "metrics": {"thoughts": 2, "cot_words": 10, "redundancy": 0.0, "policy_coverage": 0.4, "refusal": refusal},
            "grades": {rubric: {"score": score, "justification": "j"} for rubric in RUBRICS},
        }

    return {
        "id": id,
        "run": side(run_score),
        "baseline": side(baseline_score),
        "pairwise": {"verdict": verdict, "run_shown_as": "A", "justification": "j"},
        "failures": [],
        "usage": {"llm_calls": 13, "input_tokens": 0, "output_tokens": 0},
    }


def test_report_table_has_the_papers_shape_and_numbers():
    results = [result("a", 5, 4, "win"), result("b", 4, 4, "tie", refusal=1.0), result("c", 4, 3, "win")]
    results[2]["failures"] = [{"side": "baseline", "check": "coherence", "message": "no valid RubricAnswer"}]
    summary = summarize(results, run_file="run.jsonl", baseline_file="base.jsonl", bad_lines=[], judge="j", seconds=3)
    text = render(summary)
    assert "| metric | baseline | AIDSAFE | relative change |" in text
    assert "| Relevance of CoT (judge, 1-5) | 3.67 | 4.33 | +18.2% |" in text
    assert "| Faithfulness CoT → policies (judge, 1-5) | 3.67 | 4.33 | +18.2% |" in text
    assert "| Refusal rate (keyword list) | 0.33 | 0.33 | +0.0% |" in text
    assert "| Redundancy (share of repeated word 3-grams) | 0.00 | 0.00 | – |" in text  # no change of 0
    assert "| 66.7% (2) | 33.3% (1) | 0.0% (0) | 3 |" in text
    assert "- `c` baseline / coherence: no valid RubricAnswer" in text
    assert summary["score_distributions"]["relevance"]["run"] == {1: 0, 2: 0, 3: 0, 4: 2, 5: 1}
