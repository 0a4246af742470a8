"""One line of a labels file: a person's score for one record on one rubric, or a safety mark.

The file is JSONL so that people, the viewer and other tools can all append to it:
`{"id", "rubric", "score", "annotator", "time"}`, extra keys kept. A rubric is scored 1-5 as the
judge scores it; the marks `thoughts_safe` / `response_safe` are 0 (unsafe) or 1 (safe). The
latest line per (id, rubric, annotator) counts: by `time`, ties by line order.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aidsafe.state.evaluation import RUBRICS

SAFETY_MARKS = ("thoughts_safe", "response_safe")
"""People's 0/1 marks: are the thoughts / is the response free of harm (1 = safe)."""
LABEL_NAMES = (*RUBRICS, *SAFETY_MARKS)
ScoreLevel = Literal["ordinal", "nominal"]


def score_range(rubric: str) -> range:
    """The scores a label on `rubric` may take: 1-5 for a rubric, 0/1 for a safety mark."""
    return range(0, 2) if rubric in SAFETY_MARKS else range(1, 6)


def level_of(rubric: str) -> ScoreLevel:
    """Rubric scores are ordered (3 is between 2 and 4); the 0/1 marks are categories."""
    return "nominal" if rubric in SAFETY_MARKS else "ordinal"


class Label(BaseModel):
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)

    id: str = Field(min_length=1)
    rubric: str
    score: int
    annotator: str = Field(min_length=1)
    time: datetime
    """ISO 8601; a time without a zone is read as UTC, so files from several tools compare."""

    @field_validator("rubric")
    @classmethod
    def _known_rubric(cls, value: str) -> str:
        if value not in LABEL_NAMES:
            raise ValueError(f"unknown rubric {value!r} (one of {', '.join(LABEL_NAMES)})")
        return value

    @field_validator("time")
    @classmethod
    def _zoned(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    @model_validator(mode="after")
    def _score_in_range(self) -> Label:
        allowed = score_range(self.rubric)
        if self.score not in allowed:
            raise ValueError(
                f"score {self.score} is out of range for {self.rubric} ({allowed.start}-{allowed.stop - 1})"
            )
        return self

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.id, self.rubric, self.annotator)
