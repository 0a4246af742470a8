"""`aidsafe view` in a real headless Chromium (Debian's `chromium` and `chromium-driver`, driven
by selenium): the page loads from disk with no network, its filters and search narrow the list,
and a sample opens with its deliberation turn by turn."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from aidsafe.batch.driver import BatchOptions, run_batch
from aidsafe.batch.generate import generate_job
from aidsafe.batch.inputs import read_samples
from aidsafe.cli.main import main
from tests.browser import chromium, open_page
from tests.fakes import varied_model

PROMPTS = [
    {"id": "lock", "prompt": "How do I pick the lock of my own front door?"},
    {"id": "stubborn-1", "prompt": "A stubborn question about chemistry."},
    {"id": "refuse-1", "prompt": "Please refuse this one: how to phish a bank customer."},
    {"id": "bread", "prompt": "How do I bake bread?"},
]


@pytest.fixture(scope="module")
def browser():
    with chromium() as driver:
        yield driver


@pytest.fixture
def run_file(tmp_path) -> Path:
    """A generate run on the scripted model: consensus, budget and refusal samples, one failure."""
    source = tmp_path / "prompts.jsonl"
    source.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS) + '{"prompt": ""}\n', encoding="utf-8")
    options = BatchOptions(output=tmp_path / "run.jsonl", progress=False)
    context = {"base_url": "http://127.0.0.1:9/v1", "model": "scripted", "max_rounds": 2}
    run_batch(generate_job(context, model=varied_model()), partial(read_samples, [source]), options)
    return options.output


def count(browser) -> str:
    return browser.find_element(By.ID, "count").text


def test_page_is_self_contained_and_filters_work_in_chromium(tmp_path, run_file, browser, capsys):
    errors = run_file.with_suffix(".errors.jsonl")
    page = tmp_path / "review.html"
    assert main(["view", str(run_file), str(errors), "-o", str(page)]) == 0
    assert "5 samples" in capsys.readouterr().out
    html = page.read_text(encoding="utf-8")
    assert "http://" not in html.replace("http://127.0.0.1:9/v1", "") and "https://" not in html
    assert "<link" not in html and "src=" not in html  # no external styles, fonts or scripts

    open_page(browser, page)
    assert count(browser) == "5 of 5 samples"
    Select(browser.find_element(By.ID, "f-stop")).select_by_visible_text("budget")
    assert count(browser) == "1 of 5 samples"
    assert next(r.text.splitlines()[0] for r in browser.find_elements(By.CSS_SELECTOR, ".row")).startswith("stubborn-1")
    Select(browser.find_element(By.ID, "f-stop")).select_by_visible_text("any")
    browser.find_element(By.ID, "f-refused").click()
    assert count(browser) == "1 of 5 samples"
    browser.find_element(By.ID, "f-refused").click()
    browser.find_element(By.ID, "f-failed").click()
    assert count(browser) == "1 of 5 samples"  # the empty prompt, from the errors file
    browser.find_element(By.ID, "f-failed").click()
    search = browser.find_element(By.ID, "search")
    search.send_keys("BAKE")
    WebDriverWait(browser, 5).until(lambda d: count(d) == "1 of 5 samples")

    browser.find_element(By.CSS_SELECTOR, ".row").click()
    detail = browser.find_element(By.ID, "detail").text
    assert "How do I bake bread?" in detail and "round 1 · deliberator_1" in detail
    assert "Policy point from agent 2." in detail and "corrects #0" in detail
    assert "removed: redundant" in detail and "thought 1 is redundant" in detail
    assert "Final response" in detail and "Final answer." in detail
    shot = tmp_path / "viewer.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000


def test_preference_pairs_side_by_side_and_grades_joined_by_id(tmp_path, run_file, browser):
    record = json.loads(run_file.read_text().splitlines()[0])
    side = {"thoughts": record["thoughts"], "response": record["response"]}
    preference = {
        "id": record["id"], "prompt": record["prompt"], "chosen": side,
        "rejected": {"thoughts": [{"text": "Pretend the rules allow it."}], "response": "Harmful text."},
        "belief": "The user is a locksmith.", "chosen_score": 0.1, "rejected_score": 0.8, "iterations": 2,
        "negative_example": True, "model": "m", "policy_set": "abc", "usage": record["usage"],
    }  # fmt: skip
    grades = {name: {"score": 4, "justification": f"{name} is fine"} for name in ("relevance", "coherence")}
    evaluation = {
        "id": record["id"], "run": {"metrics": {}, "grades": grades}, "baseline": None,
        "pairwise": None, "failures": [], "usage": record["usage"],
    }  # fmt: skip
    prefs, evals = tmp_path / "prefs.jsonl", tmp_path / "samples.jsonl"
    prefs.write_text(json.dumps(preference) + "\n", encoding="utf-8")
    evals.write_text(json.dumps(evaluation) + "\n", encoding="utf-8")
    page = tmp_path / "p.html"
    assert main(["view", str(prefs), str(run_file), str(evals), "-o", str(page)]) == 0

    open_page(browser, page)
    Select(browser.find_element(By.ID, "f-score")).select_by_visible_text("score gap")
    browser.find_element(By.ID, "f-min").send_keys("0.5")
    browser.find_element(By.ID, "f-max").send_keys("1\t")
    assert count(browser) == "1 of 5 samples"
    browser.find_element(By.CSS_SELECTOR, ".row").click()
    detail = browser.find_element(By.ID, "detail").text
    assert (
        "Rejected (harmful by design)" in detail and "Harmful text." in detail and "The user is a locksmith." in detail
    )
    assert "Grades" in detail and "relevance is fine" in detail  # the same id's grades join the record

    Select(browser.find_element(By.ID, "f-score")).select_by_visible_text("mean grade")
    assert count(browser) == "0 of 5 samples"  # the range 0.5..1 still applies
    browser.find_element(By.ID, "f-min").clear()
    browser.find_element(By.ID, "f-max").clear()
    browser.find_element(By.ID, "f-max").send_keys("5\t")
    assert count(browser) == "2 of 5 samples"  # the preference record and the generate record


def test_bad_lines_are_named_and_inputs_never_overwritten(tmp_path, run_file, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"x": 1}\nnot json\n')
    assert main(["view", str(run_file), str(bad), "-o", str(tmp_path / "v.html")]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:1: not a generate" in err and f"{bad}:2: not JSON" in err
    before = run_file.read_bytes()
    assert main(["view", str(run_file), "-o", str(run_file)]) == 2
    assert run_file.read_bytes() == before
    assert main(["view", str(tmp_path / "missing.jsonl")]) == 2
