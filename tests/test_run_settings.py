"""The run record: one builder of the settings a run's results depend on, read from `Context`'s
metadata, so a new result-changing setting reaches every fingerprint with no other edit."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import field

import pytest
from pydantic import ConfigDict
from pydantic.dataclasses import dataclass

from aidsafe.batch.evaluate import evaluate_job
from aidsafe.batch.generate import generate_job
from aidsafe.batch.inputs import Sample
from aidsafe.batch.prefer import prefer_job
from aidsafe.batch.settings import run_settings
from aidsafe.nodes.context import EVERY_GRAPH, Context, GraphName

URL = {"base_url": "http://127.0.0.1:9/v1"}


def test_every_context_field_says_which_graphs_it_changes() -> None:
    for spec in dataclasses.fields(Context):
        changes = spec.metadata.get("changes")
        assert isinstance(changes, frozenset), f"Context.{spec.name} has no 'changes' metadata"
        assert changes <= set(typing.get_args(GraphName)), spec.name


def test_a_new_result_changing_field_changes_the_fingerprint_with_no_other_edit() -> None:
    @dataclass(kw_only=True, config=ConfigDict(validate_default=True))
    class Extended(Context):
        top_p: float = field(default=1.0, metadata={"changes": EVERY_GRAPH, "description": "Nucleus sampling."})

    for graph in typing.get_args(GraphName):
        one = run_settings(Extended(**URL, top_p=1.0), graph, ("judge",))
        other = run_settings(Extended(**URL, top_p=0.9), graph, ("judge",))
        assert one.fingerprint["top_p"] == 1.0
        assert one.fingerprint != other.fingerprint, graph


def test_a_setting_that_only_carries_the_run_out_never_changes_the_fingerprint() -> None:
    quick = generate_job({**URL, "http_retries": 0, "request_timeout": 5})
    patient = generate_job({**URL, "http_retries": 9, "request_timeout": 600})
    assert quick.settings == patient.settings


@pytest.mark.parametrize(
    ("make", "changed", "graph"),
    [
        (generate_job, {"max_rounds": 5}, "deliberation"),
        (generate_job, {"deliberator_model": "other"}, "deliberation"),
        (generate_job, {"safety_threshold": 0.4}, "gated deliberation"),
        (prefer_job, {"whisper_iterations": 5}, "preference"),
        (prefer_job, {"max_rounds": 5}, "preference"),
        (evaluate_job, {"judge_model": "other"}, "evaluation"),
        (evaluate_job, {"temperature": 0.1}, "evaluation"),
        (evaluate_job, {"check_thoughts": True}, "evaluation"),
        (evaluate_job, {"scorer_format": "llama-guard"}, "evaluation"),
    ],
)
def test_each_job_resumes_only_under_the_same_settings(make, changed, graph) -> None:
    before, after = make(URL), make({**URL, **changed})
    assert after.settings.graph == graph
    assert before.settings.fingerprint != after.settings.fingerprint
    sample = Sample(id="x", prompt="p")
    assert before.thread_id(sample) != after.thread_id(sample)


def test_a_deliberation_setting_does_not_touch_the_evaluation() -> None:
    assert evaluate_job(URL).settings == evaluate_job({**URL, "max_rounds": 7, "whisper_iterations": 9}).settings
