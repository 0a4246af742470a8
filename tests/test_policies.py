"""Policy files: the default set, user files, and errors that name file and field."""

from __future__ import annotations

import json

import pytest

from aidsafe.policies import DEFAULT_POLICY_FILE, PolicyFileError, load_policies


def test_default_set_has_the_five_aidsafe_policies():
    policies = load_policies()
    assert policies.ids == [
        "hate_harassment_violence",
        "fraud_deception",
        "physical_harm",
        "illegal_activity",
        "helpfulness_respect",
    ]
    assert load_policies(DEFAULT_POLICY_FILE).hash == policies.hash


def test_json_policy_file_equals_its_yaml_twin(tmp_path):
    data = load_policies().model_dump(mode="json")
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    assert load_policies(path).hash == load_policies().hash


def test_hash_changes_with_content(tmp_path):
    data = load_policies().model_dump(mode="json")
    data["policies"][0]["forbids"].append("something new")
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    assert load_policies(path).hash != load_policies().hash


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("name: x\npolicies:\n  - id: a\n    title: A\n", "policies.0.forbids"),
        ("name: x\npolicies:\n  - id: Bad Id\n    title: A\n    forbids: [b]\n", "policies.0.id"),
        ("name: x\npolicies:\n  - id: a\n    title: A\n    forbids: [b]\n    colour: red\n", "policies.0.colour"),
        ("name: x\npolicies: []\n", "policies"),
        ("policies:\n  - id: a\n    title: A\n    forbids: [b]\n", "name"),
        ("name: x\npolicies:\n  - {id: a, title: A, forbids: [b]}\n  - {id: a, title: B, forbids: [c]}\n", "duplicate"),
    ],
)
def test_invalid_file_names_file_and_field(tmp_path, text, field):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(PolicyFileError) as error:
        load_policies(path)
    assert str(path) in str(error.value) and field in str(error.value)


def test_unreadable_and_unparsable_files(tmp_path):
    with pytest.raises(PolicyFileError, match="cannot read"):
        load_policies(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(PolicyFileError, match="not a readable"):
        load_policies(broken)


@pytest.mark.parametrize("workers", ["1", pytest.param("2", marks=pytest.mark.slow)])
def test_a_policy_file_edited_mid_run_changes_nothing_in_that_run(tmp_path, workers):
    """A team editing its policy file while a long run goes on: the run keeps the set it started
    with (the one its fingerprint and every record name), and the edit applies to the next run.
    Ray actors: `test_ray_engine.py`."""
    assert_an_edit_mid_run_changes_nothing(tmp_path, "--workers", workers)


def assert_an_edit_mid_run_changes_nothing(tmp_path, *flags: str) -> None:
    """Edit the policy file at the run's first model call; no request and no record may see the edit."""
    from tests.fakes import StubServer, generate, prompts, read_jsonl, schema_answer, write_jsonl

    policy_file = tmp_path / "policies.yaml"
    policy_file.write_text(DEFAULT_POLICY_FILE.read_text())
    started_with = load_policies(policy_file).hash
    edited = DEFAULT_POLICY_FILE.read_text().replace("Praise or promotion", "EDITED-MID-RUN praise")

    def edit_after_the_first_answer(request: dict) -> str:
        if policy_file.read_text() != edited:
            policy_file.write_text(edited)
        return schema_answer(request)

    inputs = write_jsonl(tmp_path / "in.jsonl", prompts(3))
    with StubServer(respond=edit_after_the_first_answer) as server:
        code = generate(server, str(inputs), "-o", str(tmp_path / "out.jsonl"), "--policies", str(policy_file), *flags)
    records = read_jsonl(tmp_path / "out.jsonl")
    assert code == 0 and len(records) == 3
    assert load_policies(policy_file).hash != started_with  # the file was edited during the run
    assert {r["policy_set"] for r in records} == {r["settings"]["policy_set"] for r in records} == {started_with}
    sent = [m["content"] for request in server.requests for m in request["messages"]]
    assert not any("EDITED-MID-RUN" in text for text in sent)
