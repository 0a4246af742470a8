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
