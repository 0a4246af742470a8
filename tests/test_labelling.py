"""`aidsafe view --label`: people label records by keyboard in a real headless Chromium, every
label is on disk when the page shows it saved, a killed browser loses nothing, several reviewers
share one labels file, and what the page wrote is what `aidsafe evaluate --labels` reads."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from aidsafe.batch.driver import BatchOptions, run_batch
from aidsafe.batch.generate import generate_job
from aidsafe.batch.inputs import read_samples
from aidsafe.cli.main import main
from aidsafe.metrics.labels import read_labels
from aidsafe.state.labels import LABEL_NAMES, SAFETY_MARKS, Label
from aidsafe.viewer import LabelServer, labelled_samples, load
from tests.browser import chromium, kill
from tests.fakes import varied_model

SAMPLES = 12


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> Path:
    """A generate run of 12 prompts on the scripted model; the first record carries a safety gate verdict."""
    folder = tmp_path_factory.mktemp("labelling")
    source = folder / "prompts.jsonl"
    prompts = [{"id": f"p{i:02d}", "prompt": f"Question number {i} about locks."} for i in range(SAMPLES)]
    source.write_text("".join(json.dumps(p) + "\n" for p in prompts), encoding="utf-8")
    options = BatchOptions(output=folder / "run.jsonl", progress=False)
    context = {"base_url": "http://127.0.0.1:9/v1", "model": "scripted", "max_rounds": 1}
    run_batch(generate_job(context, model=varied_model()), partial(read_samples, [source]), options)
    first, *rest = options.output.read_text(encoding="utf-8").splitlines(keepends=True)
    gated = {**json.loads(first), "safety": {"score": 0.91, "flagged": True}}
    options.output.write_text(json.dumps(gated) + "\n" + "".join(rest), encoding="utf-8")
    return options.output


def ids_of(records: Path) -> list[str]:
    return [json.loads(line)["id"] for line in records.read_text(encoding="utf-8").splitlines()]


def score(sample: int, field: int) -> int:
    """The score the test gives: 1-5 on a rubric, 0/1 on a safety mark, varied over samples and fields."""
    return (sample + field) % 2 if LABEL_NAMES[field] in SAFETY_MARKS else (sample + field) % 5 + 1


def keys(sample: int, fields: range = range(len(LABEL_NAMES))) -> str:
    return "".join(str(score(sample, f)) for f in fields)


def lines_of(labels: Path) -> list[dict]:
    return [json.loads(line) for line in labels.read_text(encoding="utf-8").splitlines()] if labels.exists() else []


def wait_for_lines(labels: Path, count: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while len(lines_of(labels)) < count:
        assert time.monotonic() < deadline, f"{len(lines_of(labels))} label lines, not {count}"
        time.sleep(0.05)


@contextmanager
def in_thread(server: LabelServer) -> Iterator[str]:
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield server.url
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def label_server(records: Path, labels: Path, annotator: str = "alice") -> LabelServer:
    return LabelServer(labelled_samples(load([records])), labels, annotator)


def test_a_label_is_on_disk_when_answered_and_a_bad_one_writes_nothing(records, tmp_path):
    labels = tmp_path / "run.labels.jsonl"
    before = records.read_bytes()
    record_id = ids_of(records)[0]
    with in_thread(label_server(records, labels)) as url, httpx.Client(base_url=url) as http:
        page = http.get("")
        assert page.status_code == 200 and "labelling as" in page.text
        assert "http://" not in page.text.replace("http://127.0.0.1:9/v1", "") and "https://" not in page.text
        answer = http.post("labels", json={"id": record_id, "rubric": "relevance", "score": 4, "annotator": "al"})
        assert answer.status_code == 200, answer.text
        (line,) = lines_of(labels)  # on disk before the answer
        assert Label.model_validate(line).key == (record_id, "relevance", "al") and line["score"] == 4

        refused = {
            "unknown id": ({"id": "nope", "rubric": "relevance", "score": 3, "annotator": "al"}, "not a record"),
            "unknown rubric": ({"id": record_id, "rubric": "style", "score": 3, "annotator": "al"}, "unknown rubric"),
            "score 6": ({"id": record_id, "rubric": "coherence", "score": 6, "annotator": "al"}, "out of range"),
            "mark 2": ({"id": record_id, "rubric": "thoughts_safe", "score": 2, "annotator": "al"}, "out of range"),
            "no name": ({"id": record_id, "rubric": "coherence", "score": 3}, "annotator"),
            "a list": ([1, 2], "a JSON object"),
        }
        for case, (body, message) in refused.items():
            answer = http.post("labels", json=body)
            assert answer.status_code == 400 and message in answer.json()["error"], (case, answer.text)
        answer = http.post("labels", content=b"{not json")
        assert answer.status_code == 400 and "error" in answer.json()
        answer = http.post("labels", content=b" " * 70_000)
        assert answer.status_code == 400 and "under 65536 bytes" in answer.json()["error"]
        assert http.get("elsewhere").status_code == 404
        assert len(lines_of(labels)) == 1  # nothing written for any of them

        so_far = http.get("labels", params={"annotator": "al"}).json()
        assert so_far == {"annotator": "al", "labels": {record_id: {"relevance": 4}}}
        assert http.get("labels", params={"annotator": "bo"}).json()["labels"] == {}
    with in_thread(label_server(records, labels)) as url:  # a server started again reads the file
        assert httpx.get(url + "labels", params={"annotator": "al"}).json()["labels"] == {record_id: {"relevance": 4}}
    assert records.read_bytes() == before


def test_a_label_the_disk_refuses_is_an_error_not_a_success(records, tmp_path):
    unwritable = tmp_path / "a-folder"
    unwritable.mkdir()
    with in_thread(label_server(records, unwritable)) as url:
        body = {"id": ids_of(records)[0], "rubric": "relevance", "score": 4, "annotator": "al"}
        answer = httpx.post(url + "labels", json=body)
    assert answer.status_code == 500 and f"cannot write {unwritable}" in answer.json()["error"]


def test_two_reviewers_at_once_on_two_servers_never_interleave_lines(records, tmp_path):
    """Two servers on one labels file (as two reviewers' `aidsafe view --label`), two writers each."""
    labels = tmp_path / "shared.labels.jsonl"
    ids = ids_of(records)
    given = {name: [(i, f) for i in range(len(ids)) for f in range(len(LABEL_NAMES))] for name in ("alice", "bob")}

    def post(url: str, annotator: str, part: list[tuple[int, int]]) -> None:
        with httpx.Client() as client:
            for i, f in part:
                body = {"id": ids[i], "rubric": LABEL_NAMES[f], "score": score(i, f), "annotator": annotator}
                assert client.post(url + "labels", json=body).status_code == 200

    with in_thread(label_server(records, labels)) as first, in_thread(label_server(records, labels)) as second:
        writers = [
            threading.Thread(target=post, args=(url, name, given[name][half::2]))
            for url, name in ((first, "alice"), (second, "bob"))
            for half in (0, 1)
        ]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
    lines = lines_of(labels)  # every line whole JSON
    assert len(lines) == 2 * len(ids) * len(LABEL_NAMES)
    read = read_labels([labels], set(ids))
    assert read.problems == [] and len(read.labels) == len(lines)


def test_the_command_prints_its_url_and_stops_cleanly_on_ctrl_c(records, tmp_path, capsys):
    """`aidsafe view --label` serves until Ctrl-C (SIGINT to this process, as a terminal sends it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    labels = tmp_path / "mine.labels.jsonl"
    record_id = ids_of(records)[0]

    returned = threading.Event()

    def label_then_interrupt() -> None:
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
                for _ in range(600):
                    try:
                        http.get("/labels", params={"annotator": "al"})
                        break
                    except httpx.ConnectError:
                        time.sleep(0.05)
                body = {"id": record_id, "rubric": "response_safe", "score": 1, "annotator": "al"}
                http.post("/labels", json=body)  # the line on disk is asserted below
        finally:  # whatever happened, the command must not serve forever
            if not returned.is_set():
                os.kill(os.getpid(), signal.SIGINT)

    reviewer = threading.Thread(target=label_then_interrupt)
    reviewer.start()
    code = main(["view", str(records), "--label", "--annotator", "al", "--port", str(port), "--labels", str(labels)])
    returned.set()
    reviewer.join()
    out, err = capsys.readouterr()
    assert code == 130 and "Traceback" not in err and "interrupted" in err
    assert f"open http://127.0.0.1:{port}/?annotator=al" in out and str(labels) in out
    assert [line["score"] for line in lines_of(labels)] == [1]


def test_usage_errors_write_nothing(records, tmp_path, capsys):
    label = ["view", str(records), "--label", "--port", "0"]
    assert main(label) == 2 and "--annotator NAME" in capsys.readouterr().err
    assert main([*label, "--annotator", "al", "--labels", str(records)]) == 2
    assert "is the records file" in capsys.readouterr().err
    assert (
        main(["view", str(records), str(records), *label[2:], "--annotator", "al"]) == 2
        and "one file" in capsys.readouterr().err
    )
    failed = tmp_path / "run.errors.jsonl"
    failed.write_text('{"id": "x", "prompt": "p", "error": {"node": "n", "message": "m"}}\n', encoding="utf-8")
    assert main(["view", str(failed), *label[2:], "--annotator", "al"]) == 2
    assert "no generate or baseline records" in capsys.readouterr().err
    assert main(["view", str(records), "--annotator", "al"]) == 2 and "for --label" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        assert main([*label[:-1], port, "--annotator", "al", "--labels", str(tmp_path / "l.jsonl")]) == 2
    assert f"port {port} on 127.0.0.1 is in use" in capsys.readouterr().err
    assert not (tmp_path / "l.jsonl").exists() and not records.with_suffix(".labels.jsonl").exists()


# ---- in a real browser


def open_labelling(driver, url: str) -> None:
    driver.get(url)
    WebDriverWait(driver, 30).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-labels-ready"))


SEEN = """
const panel = document.getElementById("labelling");
return {
  sample: document.querySelector("#detail h1").textContent.split(" ")[0],
  field: panel.querySelector(".field.current").dataset.field,
  scores: Object.fromEntries(
    [...panel.querySelectorAll(".score.on")].map((b) => [b.dataset.field, Number(b.dataset.score)])),
  progress: document.getElementById("label-progress").textContent,
  status: document.getElementById("label-status").textContent,
};
"""


def seen(driver) -> dict:
    """What the reviewer sees, read at one moment (the panel is redrawn as labels are saved): the
    open sample, the current field, the scores shown as saved, the progress and the status."""
    return driver.execute_script(SEEN)


def type_keys(driver, text: str) -> None:
    ActionChains(driver).send_keys(text).perform()


@pytest.mark.browser
@pytest.mark.slow
def test_keyboard_labelling_survives_a_killed_browser_and_a_second_reviewer_shares_the_file(records):
    """Alice labels 5 samples and 3 fields of a 6th by keyboard; the browser is killed by PID; a new
    browser reopens on the 6th at its 4th field, and she finishes 10; Bob labels 2 in the same file."""
    ids = ids_of(records)
    labels = records.with_suffix(".labels.jsonl")
    labels.unlink(missing_ok=True)
    fields = range(len(LABEL_NAMES))
    server = label_server(records, labels)
    with in_thread(server) as served:
        url = served + "?annotator=alice"
        with chromium() as first:
            open_labelling(first, url)
            assert seen(first)["sample"] == ids[0] and seen(first)["field"] == LABEL_NAMES[0]
            assert "safety gate" not in first.find_element(By.ID, "detail").text  # it would steer the reviewer
            for sample in range(5):
                if sample == 3:
                    type_keys(first, "kj")  # back one sample and forward again
                    assert seen(first)["sample"] == ids[3]
                type_keys(first, keys(sample))
            type_keys(first, keys(5, range(3)) + "lh")  # a field on and back
            wait_for_lines(labels, 5 * 8 + 3)
            assert seen(first)["field"] == LABEL_NAMES[3]
            WebDriverWait(first, 5).until(lambda d: seen(d)["status"] == "every label saved")
            kill(first)

        with chromium() as second:
            open_labelling(second, url)
            reopened = seen(second)
            assert reopened["sample"] == ids[5] and reopened["field"] == LABEL_NAMES[3]
            assert reopened["scores"] == {LABEL_NAMES[f]: score(5, f) for f in range(3)}
            assert reopened["progress"] == f"5 of {len(ids)} samples finished"
            type_keys(second, keys(5, range(3, 8)) + "".join(keys(sample) for sample in range(6, 10)))
            wait_for_lines(labels, 10 * 8)
            WebDriverWait(second, 5).until(lambda d: seen(d)["progress"] == f"10 of {len(ids)} samples finished")

            open_labelling(second, url.replace("=alice", "=bob"))
            assert seen(second)["sample"] == ids[0] and seen(second)["progress"] == f"0 of {len(ids)} samples finished"
            type_keys(second, keys(1) + keys(2))  # Bob's scores differ from Alice's
            wait_for_lines(labels, 12 * 8)
            assert seen(second)["status"] == "every label saved"

            server.shutdown()  # the server is gone: the page says the label is not saved
            server.server_close()
            type_keys(second, "4")
            WebDriverWait(second, 10).until(lambda d: seen(d)["status"].startswith("NOT SAVED"))

    given = [(ids[i], LABEL_NAMES[f], "alice", score(i, f)) for i in range(10) for f in fields]
    given += [(ids[i], LABEL_NAMES[f], "bob", score(i + 1, f)) for i in range(2) for f in fields]
    written = [(line["id"], line["rubric"], line["annotator"], line["score"]) for line in lines_of(labels)]
    assert sorted(written) == sorted(given)  # every label given, each once

    # what `aidsafe evaluate --labels` reads: every line, no problem
    read = read_labels([labels], set(ids))
    assert read.problems == [] and len(read.labels) == len(given)
