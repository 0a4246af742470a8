"""`aidsafe export`: TRL conversational SFT and DPO rows as JSONL and a parquet dataset."""

from __future__ import annotations

import json

from aidsafe.cli.main import main
from tests.fakes import STUB_BELIEF, StubServer, whisper_stub_answer


def generate_records(tmp_path, server, count=2):
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("".join(json.dumps({"id": f"s{i}", "prompt": f"prompt {i}"}) + "\n" for i in range(count)))
    out = tmp_path / "gen.jsonl"
    assert main(["generate", str(inputs), "-o", str(out), "--base-url", server.base_url, "--no-progress"]) == 0
    return out


def test_sft_export_is_trl_conversational_with_a_think_block(tmp_path, stub_server, capsys):
    import datasets

    records = generate_records(tmp_path, stub_server)
    assert main(["export", str(records), "--format", "sft", "-o", str(tmp_path / "sft.jsonl")]) == 0
    rows = sorted(
        (json.loads(line) for line in (tmp_path / "sft.jsonl").read_text().splitlines()), key=lambda r: r["id"]
    )
    source = {r["id"]: r for r in map(json.loads, records.read_text().splitlines())}
    assert [r["id"] for r in rows] == ["s0", "s1"]
    user, assistant = rows[0]["messages"]
    assert user == {"role": "user", "content": "prompt 0"}
    thoughts = "\n".join(t["text"] for t in source["s0"]["thoughts"])
    assert assistant == {"role": "assistant", "content": f"<think>\n{thoughts}\n</think>\n\n{source['s0']['response']}"}
    table = datasets.Dataset.from_parquet(str(tmp_path / "sft.parquet"))
    assert table.num_rows == 2 and table.column_names == ["id", "messages", "policy_set"]
    assert table[0]["messages"][1]["role"] == "assistant"
    assert "2 sft rows" in capsys.readouterr().out


def test_export_reports_bad_lines_and_keeps_the_rest(tmp_path, stub_server, capsys):
    records = generate_records(tmp_path, stub_server, count=1)
    with records.open("a") as handle:
        handle.write('{"id": "x", "prompt": "no thoughts"}\n')
    assert main(["export", str(records)]) == 1
    assert len((tmp_path / "gen.sft.jsonl").read_text().splitlines()) == 1
    assert f"{records}:2: not a sft input record" in capsys.readouterr().err


def preference_records(tmp_path, count=2):
    """generate on the stub, then prefer on its output: the way users get DPO data."""
    with StubServer(respond=whisper_stub_answer) as server:
        generated = generate_records(tmp_path, server, count)
        out = tmp_path / "pairs.jsonl"
        assert main(["prefer", str(generated), "-o", str(out), "--base-url", server.base_url, "--no-progress"]) == 0
    return out


def test_dpo_export_is_trl_conversational_without_the_belief(tmp_path, capsys):
    import datasets

    records = preference_records(tmp_path)
    with records.open("a") as handle:  # a generate record is not a preference record
        handle.write((tmp_path / "gen.jsonl").read_text().splitlines()[0] + "\n")
    assert main(["export", str(records), "--format", "dpo"]) == 1
    err = capsys.readouterr().err
    assert f"{records}:3: not a dpo input record" in err
    rows = [json.loads(line) for line in (tmp_path / "pairs.dpo.jsonl").read_text().splitlines()]
    source = {r["id"]: r for r in map(json.loads, records.read_text().splitlines()[:2])}
    assert sorted(r["id"] for r in rows) == ["s0", "s1"]
    row, record = rows[0], source[rows[0]["id"]]
    assert row["prompt"] == [{"role": "user", "content": record["prompt"]}]
    for side in ("chosen", "rejected"):
        thoughts = "\n".join(t["text"] for t in record[side]["thoughts"])
        content = f"<think>\n{thoughts}\n</think>\n\n{record[side]['response']}"
        assert row[side] == [{"role": "assistant", "content": content}]
    assert STUB_BELIEF not in json.dumps(rows)
    table = datasets.Dataset.from_parquet(str(tmp_path / "pairs.dpo.parquet"))
    assert table.num_rows == 2 and table.column_names == ["id", "prompt", "chosen", "rejected", "policy_set"]
