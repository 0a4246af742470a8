"""Preference records to TRL's DPO dataset format (conversational).

    {"prompt": [{"role": "user", "content": ...}],
     "chosen": [{"role": "assistant", "content": "<think>\\n...\\n</think>\\n\\n<response>"}],
     "rejected": [{"role": "assistant", "content": ...}]}

The chain of thought goes in a `<think>` block before the response, one thought per line: the
same convention as the SFT export, so a model trained on both sees one format. A pure function:
reading and writing files is the caller's business.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from state.preference import Sample

Message = dict[str, str]


def completion(sample: Sample) -> str:
    """A sample as one assistant turn: `<think>` thoughts `</think>`, a blank line, the response."""
    thoughts = "\n".join(t["text"] for t in sample["thoughts"])
    return f"<think>\n{thoughts}\n</think>\n\n{sample['response']}"


def dpo_example(record: Mapping[str, Any]) -> dict[str, list[Message]]:
    """One preference record as a TRL conversational DPO row; raises ValueError if it has no pair."""
    if record.get("error") or not record.get("chosen") or not record.get("rejected"):
        raise ValueError(
            f"record {record.get('id', '?')!s} has no complete preference pair (error: {record.get('error')})"
        )
    return {
        "prompt": [{"role": "user", "content": record["prompt"]}],
        "chosen": [{"role": "assistant", "content": completion(record["chosen"])}],
        "rejected": [{"role": "assistant", "content": completion(record["rejected"])}],
    }
