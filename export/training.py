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
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from aidsafe.batch.files import check_outputs, replace_together
from aidsafe.export.card import CardFacts, card_path, render_card
from aidsafe.export.quality import RowFilter
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
    card: Path
    """The dataset card (`README.md` beside the data, unless that file is the user's)."""
    left_out: Counter[str] = field(default_factory=Counter)
    """Valid records the filters left out, by reason."""


def default_output(records: Path, fmt: str) -> Path:
    """`<records name without .jsonl>.<format>.jsonl` beside the records: distinct inputs (a generate
    and a baseline file of one prompts file) never export over each other."""
    return records.with_name(f"{records.name.removesuffix('.jsonl')}.{fmt}.jsonl")


def _problem(line: bytes, fmt: str) -> str | None:
    """What a line is when it is not a record of `fmt`, with the command that takes it."""
    try:
        data = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    if "chosen" in data and "rejected" in data and fmt != "dpo":
        return "a preference record (`aidsafe prefer` output): export it with --format dpo"
    if "thoughts" in data and "chosen" not in data and fmt == "dpo":
        return "a generate record: export it with --format sft, or make preference pairs with `aidsafe prefer`"
    if data.get("error") and "thoughts" not in data and "chosen" not in data:
        return "an errors-file line (a sample that failed), not a record"
    return None


def export(
    records: Path,
    fmt: str,
    output: Path,
    filters: Sequence[RowFilter] = (),
    agreement: dict[str, Any] | None = None,
    decontamination: dict[str, Any] | None = None,
) -> ExportResult:
    """Write `output` (JSONL), the same rows as a parquet dataset in `output` with `.parquet`, and
    the dataset card (`export.card`) beside them.

    A line that is not a valid record is reported with its file and line and left out; so is a
    record one of `filters` gives a reason for (counted by reason). The files
    are written beside their targets and renamed over them together, and only when at least one
    row was exported: an interrupted or empty export leaves an earlier one whole. `agreement`:
    the judge's agreement with people from an evaluation of `records`, shown in the card, as is
    `decontamination`, the counts of the cleaning of its prompts.
    """
    import pyarrow.json
    import pyarrow.parquet

    exporter = EXPORTERS[fmt]
    parquet = output.with_suffix(".parquet")
    card = card_path(output.parent, parquet.stem)
    check_outputs([records], [output, parquet, card])
    facts = CardFacts(agreement=agreement, decontamination=decontamination)
    rows = bad = 0
    with replace_together([output, parquet, card]) as (jsonl_part, parquet_part, card_part):
        with records.open("rb") as source, jsonl_part.open("w", encoding="utf-8") as sink:
            for number, line in enumerate(source, start=1):
                if not line.strip():
                    continue
                try:
                    record = exporter.reads.model_validate_json(line)
                except ValidationError as exc:
                    bad += 1
                    first = exc.errors()[0]
                    where = ".".join(str(p) for p in first["loc"]) or "line"
                    hint = _problem(line, fmt) or f"{where}: {first['msg']}"
                    print(f"{records}:{number}: not a {fmt} input record ({hint})", file=sys.stderr)
                    continue
                reason = next((r for r in (keep(record) for keep in filters) if r), None)
                if reason:
                    facts.left_out[reason] += 1
                    continue
                sink.write(json.dumps(exporter.convert(record).model_dump(mode="json"), ensure_ascii=False) + "\n")
                facts.add(record)
                rows += 1
        facts.bad_lines = bad
        if not rows:
            left_out = "".join(f"; left out {n}: {reason}" for reason, n in facts.left_out.most_common())
            raise NothingToExport(f"{records}: no valid {fmt} input records{left_out}; nothing written")
        pyarrow.parquet.write_table(pyarrow.json.read_json(jsonl_part), parquet_part)
        card_part.write_text(render_card(fmt, parquet, facts, parquet_part), encoding="utf-8")
    return ExportResult(output, parquet, rows, bad, card=card, left_out=facts.left_out)


class NothingToExport(ValueError):
    """No line was a record: the export writes nothing, so an earlier export stays as it was."""
