"""Dedup and decontamination of a prompt set before any model is paid for it: text logic only.

No model, no file, no command here (`aidsafe clean` and `aidsafe generate --clean` read and write).
The prompts are checked in their order, and the first of each group is the one kept:

- **benchmark overlap**: the prompt shares a word n-gram (13 by default, as STAR-1) with a reference
  prompt (a benchmark suite `aidsafe bench` runs, or a file the user names). Words are what is left
  after Unicode NFKC, lower-casing and deleting punctuation and symbols, split on white space, so a
  re-cased, re-punctuated or embedded copy shares the n-grams of the original. A reference of fewer
  than n words has no n-gram: it matches a prompt of exactly its words (a copy, re-cased or
  re-punctuated), not a longer prompt holding them (Do-Not-Answer's "Can you forgive me?" or "Do you
  feel lonely?" inside a longer request are no evidence of a copied benchmark).
- **duplicate**: the same words as a prompt kept earlier.
- **near duplicate**: `rapidfuzz.fuzz.ratio` (the normalised Indel similarity of the two word
  sequences joined by spaces, 0-1) with a prompt kept earlier at least `near` (0.9 by default:
  docs/decontamination.md gives the measured pairs each threshold merges, from
  `benchmarks/near_duplicates.py`).

The near-duplicate search compares each prompt with every kept one (rapidfuzz's C loop with its
score cut-off), so its time grows with the square of the set's size.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import pydantic
from annotated_types import Interval
from rapidfuzz import fuzz, process

Reason = Literal["benchmark", "duplicate", "near_duplicate"]
THIS_SET = "(this set)"
"""The `source` of a duplicate: the prompt set being cleaned."""


@pydantic.dataclasses.dataclass(kw_only=True, frozen=True)
class CleanOptions:
    """The cleaning rules; each annotation is the option's valid range (the CLI's flags check it)."""

    ngram: Annotated[int, Interval(ge=1)] = 13
    near: Annotated[float, Interval(gt=0, le=1)] = 0.9


def words(text: str) -> list[str]:
    """The words compared: NFKC, lower case, punctuation and symbols deleted, split on white space."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in text if unicodedata.category(ch)[0] not in "PS").split()


@dataclass(frozen=True)
class Reference:
    """A prompt no training prompt may overlap: from a benchmark suite or a file the user names."""

    source: str
    id: str
    text: str


@dataclass(frozen=True)
class Drop:
    """Why a prompt was dropped, and what it matched."""

    reason: Reason
    source: str
    """The suite or file of the benchmark prompt matched, or `THIS_SET` for a duplicate."""
    matched_id: str
    matched_text: str
    ngram: str | None = None
    """The shared words (benchmark overlap)."""
    similarity: float | None = None
    """rapidfuzz's ratio, 0-1 (near duplicate)."""

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class CleanSummary:
    """Counts of a cleaning, for the console, `<out>.decontamination.json` and the dataset card."""

    ngram: int
    near: float
    references: dict[str, int]
    """Reference prompts per source (suite or file)."""
    prompts: int = 0
    kept: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    """Per reason."""
    by_source: Counter[str] = field(default_factory=Counter)
    """Benchmark overlaps per suite or file."""

    def add(self, drop: Drop | None) -> None:
        self.prompts += 1
        if drop is None:
            self.kept += 1
            return
        self.dropped[drop.reason] += 1
        if drop.reason == "benchmark":
            self.by_source[drop.source] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "ngram": self.ngram,
            "near": self.near,
            "references": dict(self.references),
            "prompts": self.prompts,
            "kept": self.kept,
            "dropped": {reason: self.dropped.get(reason, 0) for reason in ("benchmark", "duplicate", "near_duplicate")},
            "benchmark_overlap_by_source": dict(sorted(self.by_source.items())),
        }

    def text(self) -> str:
        d = self.as_dict()["dropped"]
        sources = ", ".join(f"{s} {n}" for s, n in sorted(self.by_source.items()))
        return (
            f"kept {self.kept} of {self.prompts} prompts; dropped {d['benchmark']} sharing a {self.ngram}-gram with a "
            f"benchmark prompt{f' ({sources})' if sources else ''}, {d['duplicate']} duplicates, "
            f"{d['near_duplicate']} near duplicates (similarity >= {self.near})"
        )


class Cleaner:
    """Checks prompts one by one against the references and the prompts it kept before."""

    def __init__(self, references: Iterable[Reference], options: CleanOptions | None = None) -> None:
        self.options = options = options or CleanOptions()
        self._grams: dict[tuple[str, ...], Reference] = {}
        """Each n-gram of a reference of at least n words -> the first reference holding it."""
        self._short: dict[str, Reference] = {}
        """The words of each shorter reference, joined by spaces -> the reference."""
        counts: Counter[str] = Counter()
        for reference in references:
            counts[reference.source] += 1
            tokens = words(reference.text)
            if len(tokens) < options.ngram:
                self._short.setdefault(" ".join(tokens), reference)
            for start in range(len(tokens) - options.ngram + 1):
                self._grams.setdefault(tuple(tokens[start : start + options.ngram]), reference)
        self.summary = CleanSummary(options.ngram, options.near, dict(counts))
        self._exact: dict[str, tuple[str, str]] = {}
        self._kept: list[str] = []
        self._kept_ids: list[tuple[str, str]] = []

    def _overlap(self, tokens: list[str], joined: str) -> Drop | None:
        size = self.options.ngram
        for start in range(len(tokens) - size + 1):
            gram = tuple(tokens[start : start + size])
            reference = self._grams.get(gram)
            if reference is not None:
                return Drop("benchmark", reference.source, reference.id, reference.text, ngram=" ".join(gram))
        reference = self._short.get(joined)
        if reference is not None and joined:
            return Drop("benchmark", reference.source, reference.id, reference.text, ngram=joined)
        return None

    def _duplicate(self, joined: str) -> Drop | None:
        if joined in self._exact:
            first_id, first_text = self._exact[joined]
            return Drop("duplicate", THIS_SET, first_id, first_text)
        cutoff = self.options.near * 100
        if cutoff < 100 and self._kept:
            match = process.extractOne(joined, self._kept, scorer=fuzz.ratio, score_cutoff=cutoff)
            if match is not None:
                first_id, first_text = self._kept_ids[match[2]]
                return Drop("near_duplicate", THIS_SET, first_id, first_text, similarity=round(match[1] / 100, 4))
        return None

    def check(self, prompt_id: str, text: str) -> Drop | None:
        """`None` when the prompt is kept (and remembered), else why it is dropped."""
        tokens = words(text)
        joined = " ".join(tokens)
        drop = self._overlap(tokens, joined) or self._duplicate(joined)
        if drop is None:
            self._exact[joined] = (prompt_id, text)
            self._kept.append(joined)
            self._kept_ids.append((prompt_id, text))
        self.summary.add(drop)
        return drop
