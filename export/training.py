"""Training formats. Each format is an `Exporter`: the record it reads and how one record becomes a row.

SFT (TRL's conversational format, what `SFTTrainer` takes): `{"id", "messages": [user, assistant]}`
with the chain of thought in the assistant turn as a `<think>` block, one thought per line, then
the response:

    <think>
    The user is locked out of their own home ...
    Giving general lock-picking information is allowed for one's own lock ...
    </think>

    Here is how ...

Reasoning models (Qwen3, DeepSeek-R1, SmolLM3) use this layout, so their chat templates keep it.

DPO (TRL's conversational preference format, what `DPOTrainer` takes), from `aidsafe prefer`
records: `{"id", "prompt": [user], "chosen": [assistant], "rejected": [assistant]}`, each
assistant turn laid out as above, so a model trained on both formats sees one layout. The belief
that produced the rejected side is never part of a row.

Add a format by adding an entry to `EXPORTERS`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ValidationError

from aidsafe.state.deliberation import Thought
from aidsafe.state.records import ChatMessage, DpoRecord, GenerateRecord, PreferenceRecord, SftRecord


def assistant_turn(thoughts: list[Thought], response: str) -> ChatMessage:
    """`<think>`, one thought per line, `</think>`, a blank line, then the response."""
    think = "<think>\n" + "\n".join(t["text"] for t in thoughts) + "\n</think>"
    return ChatMessage(role="assistant", content=f"{think}\n\n{response}")


def sft_row(record: GenerateRecord) -> SftRecord:
    user = ChatMessage(role="user", content=record.prompt)
    return SftRecord(
        id=record.id, messages=[user, assistant_turn(record.thoughts, record.response)], policy_set=record.policy_set
    )


def dpo_row(record: PreferenceRecord) -> DpoRecord:
    return DpoRecord(
        id=record.id,
        prompt=[ChatMessage(role="user", content=record.prompt)],
        chosen=[assistant_turn(record.chosen["thoughts"], record.chosen["response"])],
        rejected=[assistant_turn(record.rejected["thoughts"], record.rejected["response"])],
        policy_set=record.policy_set,
    )


@dataclass(frozen=True)
class Exporter:
    reads: type[BaseModel]
    convert: Callable[[BaseModel], BaseModel]


EXPORTERS: dict[str, Exporter] = {
    "sft": Exporter(GenerateRecord, sft_row),  # type: ignore[arg-type]
    "dpo": Exporter(PreferenceRecord, dpo_row),  # type: ignore[arg-type]
}


@dataclass
class ExportResult:
    jsonl: Path
    parquet: Path
    rows: int
    bad_lines: int


def export(records: Path, fmt: str, output: Path) -> ExportResult:
    """Write `output` (JSONL) and the same rows as a Hugging Face dataset in `output` with `.parquet`.

    A line that is not a valid record is reported with its file and line and left out.
    """
    import datasets

    exporter = EXPORTERS[fmt]
    output.parent.mkdir(parents=True, exist_ok=True)
    rows = bad = 0
    with records.open(encoding="utf-8", errors="replace") as source, output.open("w", encoding="utf-8") as sink:
        for number, line in enumerate(source, start=1):
            if not line.strip():
                continue
            try:
                record = exporter.reads.model_validate_json(line)
            except ValidationError as exc:
                bad += 1
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "line"
                print(f"{records}:{number}: not a {fmt} input record ({where}: {first['msg']})", file=sys.stderr)
                continue
            sink.write(json.dumps(exporter.convert(record).model_dump(mode="json"), ensure_ascii=False) + "\n")
            rows += 1
    parquet = output.with_suffix(".parquet")
    if rows:
        datasets.Dataset.from_json(str(output)).to_parquet(str(parquet))
    return ExportResult(output, parquet, rows, bad)
