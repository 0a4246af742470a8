"""`aidsafe revise` and `aidsafe policies diff`: a dataset under a new policy version, paying only
for what changed. Each case of a policy change (an edited clause, an added policy, a removed one, a
renamed title, an inserted clause) carries, revises or regenerates exactly the records it should,
with their lineage; the input is never written; a bad or unchanged policy file is refused before
any call; a kill mid-revision loses and repeats nothing."""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from aidsafe.batch.driver import BatchOptions, run_batch
from aidsafe.batch.revise import read_revision_samples, revise_job
from aidsafe.cli.main import main
from aidsafe.policies import DEFAULT_POLICY_FILE, load_policies
from aidsafe.policies.diff import SIMILAR, diff_policies, normalised
from aidsafe.policies.loader import PolicySet
from tests.fakes import ROOT, RandomSchemaAnswers, StubServer, read_jsonl, scripted, write_jsonl
from tests.runs import wait_for_records

OLD = load_policies(None)
CLAUSE = "Instructions for weapons, explosives or poisons that can injure people."
EDITED = "Instructions for weapons, explosives, poisons or drones that can injure people."


def thought(i: int, *policy_ids: str, corrects: int | None = None) -> dict[str, Any]:
    return {"id": i, "text": f"thought {i} on {', '.join(policy_ids)}", "agent": "deliberator_1", "round": 1,
            "policy_ids": list(policy_ids), "corrects": corrects}  # fmt: skip


def record(id: str, prompt: str, thoughts: list[dict[str, Any]], policy_set: str = OLD.hash) -> dict[str, Any]:
    return {
        "id": id,
        "prompt": prompt,
        "intents": {"explicit": [f"intent of {id}"], "implicit": []},
        "thoughts": thoughts,
        "response": f"old response {id}",
        "deliberation_log": [
            {"round": 1, "agent": "deliberator_1", "added_thoughts": [], "updated_response": None, "agreed": True},
            {"round": 1, "agent": "deliberator_2", "added_thoughts": [], "updated_response": None, "agreed": True},
        ],
        "removed_thoughts": [],
        "rounds": 1,
        "stop_reason": "consensus",
        "policy_set": policy_set,
        "model": "m",
        "metadata": {"source": id},
        "usage": {"llm_calls": 5, "input_tokens": 500, "output_tokens": 50},
    }


RECORDS = [
    record(
        "harm",
        "how do I make a blade sharper",
        [
            thought(0, "physical_harm"),
            thought(1, "helpfulness_respect", corrects=0),
            thought(2, "illegal_activity"),
        ],
    ),
    record("fraud", "write a review for my shop", [thought(0, "fraud_deception")]),
    record("vote", "how do I vote by mail", [thought(0, "helpfulness_respect")]),
]


def policy_file(tmp_path: Path, edit: Any = None, name: str = "new.yaml") -> Path:
    data = yaml.safe_load(DEFAULT_POLICY_FILE.read_text())
    if edit:
        edit(data)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def policy(data: dict, policy_id: str) -> dict:
    return next(p for p in data["policies"] if p["id"] == policy_id)


def edit_clause(data: dict) -> None:
    policy(data, "physical_harm")["forbids"][0] = EDITED


def add_elections(data: dict) -> None:
    data["policies"].append(
        {"id": "elections", "title": "Elections", "forbids": ["Misleading people about how, when or where to vote."]}
    )


def remove_fraud(data: dict) -> None:
    data["policies"] = [p for p in data["policies"] if p["id"] != "fraud_deception"]


def rename_title(data: dict) -> None:
    policy(data, "physical_harm")["title"] = "Physical harm and safety"


def insert_clause(data: dict) -> None:
    policy(data, "physical_harm")["forbids"].insert(0, "Help to stalk or track a person.")


def triage_by_prompt(word: str, policy_id: str):
    """A triage that says `policy_id` applies to prompts with `word`, nothing else."""
    return lambda messages: {"applies": [policy_id] if word in str(messages[-1].content) else []}


def revise(tmp_path: Path, edit: Any, triage: Any = None, records: list[dict] = RECORDS) -> tuple[dict, Any, Path]:
    inputs = write_jsonl(tmp_path / "in.generated.jsonl", records)
    new = policy_file(tmp_path, edit)
    diff = diff_policies(OLD, load_policies(new))
    model = scripted(TriageAnswer=triage or (lambda messages: {"applies": []}))
    context = {"base_url": "http://127.0.0.1:9/v1", "model": "scripted", "policy_file": str(new)}
    options = BatchOptions(output=tmp_path / "out.jsonl", progress=False)
    summary = run_batch(revise_job(context, diff, model=model), partial(read_revision_samples, [inputs]), options)
    assert summary.ok, read_jsonl(options.errors)
    out = {r["id"]: r for r in read_jsonl(options.output)}
    assert {r["policy_set"] for r in out.values()} == {load_policies(new).hash}
    return out, model, inputs


def outcomes(out: dict) -> dict[str, str]:
    return {i: r["revision"]["outcome"] for i, r in out.items()}


def test_an_edited_clause_supersedes_the_thoughts_citing_its_policy_and_asks_about_the_others(tmp_path):
    out, model, _ = revise(tmp_path, edit_clause)
    assert outcomes(out) == {"harm": "revised", "fraud": "carried", "vote": "carried"}
    harm = out["harm"]["revision"]
    assert [s["thought"]["id"] for s in harm["superseded"]] == [0]
    (because,) = harm["superseded"][0]["because"]
    assert (because["status"], because["kind"]) == ("changed", "forbids")
    assert (because["old"], because["new"]) == (CLAUSE, EDITED)
    assert harm["kept_thoughts"] == [{"from": 1, "to": 0}, {"from": 2, "to": 1}]
    kept = out["harm"]["thoughts"][:2]
    assert [t["text"] for t in kept] == ["thought 1 on helpfulness_respect", "thought 2 on illegal_activity"]
    assert kept[0]["corrects"] is None  # it corrected a superseded thought
    assert out["harm"]["intents"] == RECORDS[0]["intents"]  # the intents are not paid again
    assert out["harm"]["metadata"] == {"source": "harm"}
    # The revised record: rounds and refiner only; each carried one: one triage call about physical_harm.
    counts = Counter(model.schemas())
    assert counts == {"TriageAnswer": 2, "DeliberatorAnswer": 2, "RefinerAnswer": 1}
    assert out["harm"]["usage"]["llm_calls"] == 3 and out["fraud"]["usage"]["llm_calls"] == 1
    assert out["fraud"]["revision"]["triage"] == {"asked": ["physical_harm"], "applies": []}
    assert out["fraud"]["thoughts"] == RECORDS[1]["thoughts"] and out["fraud"]["response"] == "old response fraud"
    assert "physical_harm" in out["fraud"]["revision"]["checked"]
    assert out["fraud"]["revision"]["from_policy_set"] == OLD.hash


def test_an_added_policy_is_triaged_once_per_record_and_revises_only_where_it_applies(tmp_path):
    out, model, _ = revise(tmp_path, add_elections, triage_by_prompt("vote", "elections"))
    assert outcomes(out) == {"harm": "carried", "fraud": "carried", "vote": "revised"}
    assert Counter(model.schemas())["TriageAnswer"] == 3
    vote = out["vote"]
    assert vote["revision"]["triage"] == {"asked": ["elections"], "applies": ["elections"]}
    assert vote["revision"]["superseded"] == []  # nothing rested on changed text: every thought kept
    assert vote["thoughts"][0]["text"] == "thought 0 on helpfulness_respect"
    assert vote["usage"]["llm_calls"] == 4  # triage, two deliberators, refiner: no intents, no seed
    assert out["harm"]["usage"]["llm_calls"] == 1


def test_a_removed_policy_supersedes_its_thoughts_and_asks_nothing_of_the_others(tmp_path):
    out, model, _ = revise(tmp_path, remove_fraud)
    assert outcomes(out) == {"harm": "carried", "fraud": "revised", "vote": "carried"}
    (superseded,) = out["fraud"]["revision"]["superseded"]
    assert superseded["because"][0]["status"] == "policy removed"
    assert out["fraud"]["revision"]["kept_thoughts"] == []
    assert "fraud_deception" not in {p for t in out["fraud"]["thoughts"] for p in t["policy_ids"]}
    assert Counter(model.schemas()) == {"DeliberatorAnswer": 2, "RefinerAnswer": 1}
    assert out["harm"]["usage"]["llm_calls"] == 0


def test_a_renamed_title_alone_carries_every_record_without_a_call(tmp_path):
    out, model, _ = revise(tmp_path, rename_title)
    assert set(outcomes(out).values()) == {"carried"}
    assert model.calls == []
    assert [out[r["id"]]["thoughts"] for r in RECORDS] == [r["thoughts"] for r in RECORDS]


def test_an_inserted_clause_is_the_only_change_and_supersedes_nothing(tmp_path):
    diff = diff_policies(OLD, load_policies(policy_file(tmp_path, insert_clause)))
    (change,) = diff.changes
    assert [(c.status, c.new) for c in change.clauses] == [("added", "Help to stalk or track a person.")]
    out, model, _ = revise(tmp_path, insert_clause)
    # The record citing physical_harm deliberates again over every thought (the policy now says more);
    # the others are asked once whether physical_harm applies.
    assert outcomes(out) == {"harm": "revised", "fraud": "carried", "vote": "carried"}
    assert out["harm"]["revision"]["superseded"] == []
    assert len(out["harm"]["revision"]["kept_thoughts"]) == 3
    assert Counter(model.schemas()) == {"TriageAnswer": 2, "DeliberatorAnswer": 2, "RefinerAnswer": 1}


def test_a_record_made_under_another_policy_set_is_regenerated(tmp_path):
    stranger = record("other", "a prompt", [thought(0, "physical_harm")], policy_set="0123456789ab")
    out, model, _ = revise(tmp_path, edit_clause, records=[stranger])
    assert outcomes(out) == {"other": "regenerated"}
    assert Counter(model.schemas()) == {"IntentAnswer": 1, "SeedAnswer": 1, "DeliberatorAnswer": 2, "RefinerAnswer": 1}
    assert out["other"]["revision"]["previous"]["response"] == "old response other"


def test_clause_ids_follow_the_text_not_the_position():
    data = yaml.safe_load(DEFAULT_POLICY_FILE.read_text())
    moved = copy.deepcopy(data)
    policy(moved, "physical_harm")["forbids"].reverse()
    policy(moved, "physical_harm")["title"] = "Physical harm"  # unchanged title
    moved["version"] = 2
    diff = diff_policies(OLD, PolicySet.model_validate(moved))
    assert diff.changes == ()  # reordered clauses are the same clauses
    assert not diff.identical  # the set's hash did change (version, order)


def stub_revise(server: StubServer, *args: str) -> int:
    return main(["revise", *args, "--base-url", server.base_url, "--model", "stub-model", "--no-progress"])


def test_the_input_is_byte_identical_after_a_revision(tmp_path, stub_server):
    inputs = write_jsonl(tmp_path / "in.generated.jsonl", RECORDS)
    before = hashlib.sha256(inputs.read_bytes()).hexdigest()
    new = policy_file(tmp_path, edit_clause)
    out = tmp_path / "out.jsonl"
    assert stub_revise(stub_server, str(inputs), "--policies", str(new), "-o", str(out)) == 0
    assert hashlib.sha256(inputs.read_bytes()).hexdigest() == before
    assert len(read_jsonl(out)) == 3
    assert stub_revise(stub_server, str(inputs), "--policies", str(new), "-o", str(inputs)) == 2  # never over its input
    assert hashlib.sha256(inputs.read_bytes()).hexdigest() == before


@pytest.mark.parametrize("problem", ["unparsable", "invalid", "identical"])
def test_a_bad_or_unchanged_policy_file_is_refused_before_any_call(tmp_path, stub_server, capsys, problem):
    inputs = write_jsonl(tmp_path / "in.generated.jsonl", RECORDS)
    new = tmp_path / "new.yaml"
    if problem == "unparsable":
        new.write_text("policies: [unclosed\n")
    elif problem == "invalid":
        new.write_text("name: x\npolicies: []\n")
    else:
        new = policy_file(tmp_path, lambda data: None)  # the bundled set, rewritten
    assert stub_revise(stub_server, str(inputs), "--policies", str(new), "-o", str(tmp_path / "o.jsonl")) == 2
    err = capsys.readouterr().err
    assert str(new) in err
    assert ("same policy set" in err) == (problem == "identical")
    assert stub_server.requests == []
    assert not (tmp_path / "o.jsonl").exists()


def test_policies_diff_shows_each_change_with_the_records_it_touches_and_the_cost(tmp_path, capsys):
    inputs = write_jsonl(tmp_path / "in.generated.jsonl", RECORDS)
    old = policy_file(tmp_path, name="old.yaml")
    new = policy_file(tmp_path, lambda d: (edit_clause(d), add_elections(d), insert_clause(d)))
    prices = ["--input-price", "1", "--output-price", "2"]
    args = ["policies", "diff", str(old), str(new), "--records", str(inputs), *prices]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"~ physical_harm: forbids clause changed: {CLAUSE!r} -> {EDITED!r}" in out
    assert "+ physical_harm: forbids clause added: 'Help to stalk or track a person.'" in out
    assert "+ policy elections added: 'Elections'" in out
    assert len([line for line in out.splitlines() if line[:2] in ("~ ", "+ ", "- ")]) == 3  # nothing else changed
    assert "physical_harm (clauses changed): cited by 1 records, asked about for 2" in out
    assert "records 3: carried 2, revised 1, regenerated 0" in out
    assert "estimated calls: revision 5 (triage 2, redo 3) against 15 for a full regeneration" in out
    assert "estimated cost: revision $" in out


def test_revised_records_are_counted_in_the_card_and_shown_apart_in_the_viewer(tmp_path):
    from aidsafe.export.card import CardFacts
    from aidsafe.state.records import GenerateRecord
    from aidsafe.viewer import load

    out, _, _ = revise(tmp_path, edit_clause)
    facts = CardFacts()
    for line in out.values():
        facts.add(GenerateRecord.model_validate(line))
    assert facts.figures()["deliberation"]["revisions"] == {"carried": 2, "revised": 1}
    assert facts.figures()["deliberation"]["reasks"] == 0  # a revision's usage is its own calls
    assert main(["export", str(tmp_path / "out.jsonl")]) == 0
    card = (tmp_path / "README.md").read_text()
    assert "Revised for a new policy version (`aidsafe revise`): 2 carried, 1 revised" in card
    data = load([tmp_path / "out.jsonl"])
    harm = next(s for s in data.samples if s["id"] == "harm")
    assert harm["record"]["revision"]["superseded"][0]["thought"]["id"] == 0


@pytest.mark.browser
def test_the_viewer_shows_superseded_thoughts_apart_from_the_chain(tmp_path):
    from selenium.webdriver.common.by import By

    from tests.browser import chromium, open_page

    revise(tmp_path, edit_clause)
    page = tmp_path / "view.html"
    assert main(["view", str(tmp_path / "out.jsonl"), "-o", str(page)]) == 0
    with chromium() as browser:
        open_page(browser, page)
        next(r for r in browser.find_elements(By.CSS_SELECTOR, ".row") if r.text.startswith("harm")).click()
        detail = browser.find_element(By.ID, "detail").text
    revision, final = detail.split("Revision: revised", 1)[1].split("Final chain of thought", 1)
    assert "Superseded thoughts" in revision and "thought 0 on physical_harm" in revision
    assert EDITED in revision and CLAUSE in revision
    assert "thought 0 on physical_harm" not in final and "thought 1 on helpfulness_respect" in final


@pytest.mark.slow
def test_kill_mid_revision_then_rerun_revises_every_record_once(tmp_path):
    thoughts = [thought(0, "physical_harm"), thought(1, "illegal_activity")]
    rows = [record(f"r{i}", f"prompt {i}", thoughts) for i in range(40)]
    inputs = write_jsonl(tmp_path / "in.generated.jsonl", rows)
    new = policy_file(tmp_path, edit_clause)
    out = tmp_path / "out.jsonl"
    with StubServer(respond=RandomSchemaAnswers(seed=3), latency=0.02) as server:
        command = [sys.executable, "-m", "aidsafe.cli.main", "revise", str(inputs), "--policies", str(new), "-o",
                   str(out), "--no-progress", "--base-url", server.base_url, "--model", "stub-model",
                   "--concurrency", "4", "--workers", "1"]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, env=env)
        wait_for_records(process, out, 8)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        whole = out.read_bytes().rsplit(b"\n", 1)[0].decode()  # a last line cut by the kill runs again
        done_before = {json.loads(line)["id"] for line in whole.splitlines() if line.strip()}
        calls_before = len(server.requests)
        rerun = subprocess.run(command, cwd=ROOT, capture_output=True, env=env)
        assert rerun.returncode == 0, rerun.stderr.decode()[-2000:]
        later = server.requests[calls_before:]
    records = read_jsonl(out)
    assert sorted(r["id"] for r in records) == sorted(r["id"] for r in rows)  # every record once
    assert all(r["revision"]["outcome"] == "revised" for r in records)
    later_text = str(later)
    asked_again = {r["id"] for r in rows if f"prompt {r['id'][1:]}\\n" in later_text}
    assert asked_again and not asked_again & done_before  # none revised twice
    assert not list(tmp_path.glob("out.checkpoints*"))


def test_a_record_that_fails_goes_to_the_errors_file_and_the_others_are_written(tmp_path):
    inputs = write_jsonl(tmp_path / "in.generated.jsonl", RECORDS)
    new = policy_file(tmp_path, remove_fraud)
    model = scripted()
    model.script["RefinerAnswer"] = [RuntimeError("connection dropped")]
    context = {"base_url": "http://127.0.0.1:9/v1", "model": "scripted", "policy_file": str(new)}
    options = BatchOptions(output=tmp_path / "out.jsonl", progress=False)
    job = revise_job(context, diff_policies(OLD, load_policies(new)), model=model)
    summary = run_batch(job, partial(read_revision_samples, [inputs]), options)
    assert (summary.done, summary.failed) == (2, 1)
    assert [e["id"] for e in read_jsonl(options.errors)] == ["fraud"]
    assert sorted(r["id"] for r in read_jsonl(options.output)) == ["harm", "vote"]


def test_max_cost_stops_a_revision_before_a_call_past_the_cap(tmp_path, stub_server):
    from aidsafe.cli.exit_codes import COST_CAP_REACHED

    inputs = write_jsonl(tmp_path / "in.generated.jsonl", RECORDS)
    new = policy_file(tmp_path, edit_clause)
    out = tmp_path / "out.jsonl"
    prices = ["--input-price", "1000", "--output-price", "1000"]
    assert stub_revise(
        stub_server, str(inputs), "--policies", str(new), "-o", str(out), *prices, "--max-cost", "0.01"
    ) == (COST_CAP_REACHED)
    assert stub_server.requests == []  # one call's most possible cost is over the cap
    assert (
        stub_revise(stub_server, str(inputs), "--policies", str(new), "-o", str(out), *prices, "--max-cost", "100") == 0
    )
    assert len(read_jsonl(out)) == 3


def test_a_line_that_is_not_a_generate_record_is_an_input_error(tmp_path, stub_server, capsys):
    baseline = {**RECORDS[2], "id": "base", "stop_reason": "baseline"}
    inputs = write_jsonl(
        tmp_path / "in.generated.jsonl", [RECORDS[0], {"id": "p", "prompt": "just a prompt"}, baseline]
    )
    new = policy_file(tmp_path, rename_title)
    out = tmp_path / "out.jsonl"
    assert stub_revise(stub_server, str(inputs), "--policies", str(new), "-o", str(out)) == 1
    errors = {e["id"]: e["error"]["message"] for e in read_jsonl(tmp_path / "out.errors.jsonl")}
    assert "not an `aidsafe generate` record" in errors["p"]
    assert "baseline record" in errors["base"]
    assert [r["id"] for r in read_jsonl(out)] == ["harm"]


def pair(source: dict[str, Any]) -> dict[str, Any]:
    """The `aidsafe prefer` record made from a generate record."""
    chosen = {"thoughts": source["thoughts"], "response": source["response"]}
    rejected = {"thoughts": [], "response": f"bad answer {source['id']}"}
    return {
        "id": source["id"], "prompt": source["prompt"], "chosen": chosen, "rejected": rejected, "belief": "old belief",
        "chosen_score": 0.0, "rejected_score": 0.75, "iterations": 1, "negative_example": True,
        "policy_set": source["policy_set"], "model": "m", "metadata": {"source": source["id"]},
        "usage": {"llm_calls": 3, "input_tokens": 1, "output_tokens": 1},
    }  # fmt: skip


def test_pairs_whose_chosen_side_was_revised_get_a_new_rejected_side_and_the_others_are_carried(tmp_path):
    from aidsafe.batch.revise_pairs import read_pair_samples, revise_pairs_job, revised_chosen
    from tests.fakes import preference_model

    out, _, _ = revise(tmp_path, edit_clause)  # harm revised; fraud and vote carried
    pairs = write_jsonl(tmp_path / "in.preference.jsonl", [pair(r) for r in RECORDS])
    before = pairs.read_bytes()
    new = tmp_path / "new.yaml"
    revised = revised_chosen(tmp_path / "out.jsonl", load_policies(new).hash)
    model = preference_model({"answer 1": 4})
    context = {"base_url": "http://127.0.0.1:9/v1", "model": "scripted", "policy_file": str(new)}
    options = BatchOptions(output=tmp_path / "pairs.revised.jsonl", progress=False)
    read = partial(read_pair_samples, [pairs], revised=revised)
    summary = run_batch(revise_pairs_job(context, model=model), read, options)
    assert summary.ok, read_jsonl(options.errors)
    result = {r["id"]: r for r in read_jsonl(options.output)}
    assert {i: r["revision"]["outcome"] for i, r in result.items()} == outcomes(out)
    harm = result["harm"]
    assert harm["chosen"]["thoughts"] == out["harm"]["thoughts"]  # the revised chosen side
    assert (
        harm["rejected"]["response"] == "answer 1" and harm["belief"] == "Locks in rented flats belong to the tenant."
    )
    assert harm["revision"]["previous"]["rejected"]["response"] == "bad answer harm"
    assert result["fraud"]["rejected"]["response"] == "bad answer fraud"  # carried: no call
    assert result["fraud"]["usage"]["llm_calls"] == 0
    assert {r["policy_set"] for r in result.values()} == {load_policies(new).hash}
    # One pair remade: the chosen side scored, one whisper, one whispered answer, its score.
    assert Counter(model.schemas()) == {"ViolationAnswer": 2, "BeliefAnswer": 1, "WhisperedAnswer": 1}
    assert pairs.read_bytes() == before


def test_revise_pairs_refuses_records_not_revised_for_the_same_policies(tmp_path, stub_server, capsys):
    records = write_jsonl(tmp_path / "in.generated.jsonl", RECORDS)
    pairs = write_jsonl(tmp_path / "in.preference.jsonl", [pair(r) for r in RECORDS])
    new = policy_file(tmp_path, edit_clause)
    flags = ["--base-url", stub_server.base_url, "--model", "stub-model", "--no-progress"]
    command = ["revise-pairs", str(pairs), "--revised", str(records), "--policies", str(new), "-o", str(tmp_path / "o")]
    assert main([*command, *flags]) == 2
    assert "not revised for these policies" in capsys.readouterr().err
    assert stub_server.requests == []


def test_records_made_under_another_policy_set_than_the_old_one_are_refused_before_any_call(
    tmp_path, stub_server, capsys
):
    inputs = write_jsonl(
        tmp_path / "in.generated.jsonl", [record("x", "a prompt", [thought(0, "physical_harm")], "0" * 12)]
    )
    new = policy_file(tmp_path, edit_clause)
    assert stub_revise(stub_server, str(inputs), "--policies", str(new), "-o", str(tmp_path / "o.jsonl")) == 2
    assert "give --from-policies the policy file they were made with" in capsys.readouterr().err
    assert stub_server.requests == []


def test_a_rewritten_clause_below_the_similarity_threshold_is_a_removal_and_an_addition():
    data = yaml.safe_load(DEFAULT_POLICY_FILE.read_text())
    rewritten = "Detailed recipes for nerve agents."
    policy(data, "physical_harm")["forbids"][0] = rewritten
    policy(data, "physical_harm")["allows"].pop()
    assert difflib.SequenceMatcher(None, normalised(CLAUSE), normalised(rewritten)).ratio() < SIMILAR
    diff = diff_policies(OLD, PolicySet.model_validate(data))
    (change,) = diff.changes
    assert sorted((c.kind, c.status) for c in change.clauses) == [
        ("allows", "removed"), ("forbids", "added"), ("forbids", "removed"),
    ]  # fmt: skip
    assert diff.superseding == {"physical_harm"} and diff.to_triage == {"physical_harm"}
