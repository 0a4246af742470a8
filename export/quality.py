"""Filters that leave rows out of an export, each with the reason it reports.

DPO pair quality: a pair teaches little when the rejected side is barely worse than the chosen one
(the violation-score margin `rejected_score - chosen_score` is below `min_score_gap`), or when the
two texts are near-duplicates (`rapidfuzz`'s normalised Indel similarity of the two assistant turns
is at least `max_similarity`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import pydantic
from annotated_types import Interval
from pydantic import BaseModel
from rapidfuzz import fuzz

from aidsafe.state.records import GenerateRecord, PreferenceRecord

RowFilter = Callable[[BaseModel], str | None]
"""Returns why a record is left out of the export, or None to keep it."""


@pydantic.dataclasses.dataclass(kw_only=True, frozen=True)
class PairQuality:
    """The DPO pair-quality settings; each annotation is the valid range (the CLI's flags check it)."""

    min_score_gap: Annotated[float, Interval(ge=-1, le=1)] | None = None
    """Least `score_gap` (rejected minus chosen violation score, -1..1) a pair needs."""
    max_similarity: Annotated[float, Interval(ge=0, le=1)] | None = None
    """Pairs whose chosen and rejected texts are at least this similar (0..1) are dropped."""

    def filters(self, assistant_text: Callable[[dict], str]) -> list[RowFilter]:
        """`assistant_text(sample)` is the side as the row holds it (`<think>` block and response)."""
        filters: list[RowFilter] = []
        if self.min_score_gap is not None:
            least = self.min_score_gap

            def small_gap(record: BaseModel) -> str | None:
                assert isinstance(record, PreferenceRecord)
                return f"score gap below {least:g}" if record.score_gap < least else None

            filters.append(small_gap)
        if self.max_similarity is not None:
            most = self.max_similarity

            def near_duplicate(record: BaseModel) -> str | None:
                assert isinstance(record, PreferenceRecord)
                chosen, rejected = assistant_text(record.chosen), assistant_text(record.rejected)  # type: ignore[arg-type]
                similar = fuzz.ratio(chosen, rejected) / 100 >= most
                return f"chosen and rejected near-duplicates (similarity at least {most:g})" if similar else None

            filters.append(near_duplicate)
        return filters


def safety_gate(threshold: float | None) -> RowFilter:
    """SFT: leave out records the safety gate flagged (their response, or their thoughts: a row trains
    on both), or, given `threshold`, whose recorded gate score is above it; with a threshold, a record
    the gate never rated is left out too. Records rated before thoughts were checked have no thoughts
    score and are judged by their response alone."""

    def unsafe(record: BaseModel) -> str | None:
        assert isinstance(record, GenerateRecord)
        if record.safety is None:
            return None if threshold is None else "not rated by the safety gate (generate with --safety-threshold)"
        limit = record.safety["threshold"] if threshold is None else threshold
        if record.safety["score"] > limit:
            return f"flagged by the safety gate (violation score above {limit:g})"
        if record.safety.get("thoughts_score", 0.0) > limit:
            return f"thoughts flagged by the safety gate (violation score above {limit:g})"
        return None

    return unsafe
