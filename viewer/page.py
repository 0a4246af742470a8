"""`aidsafe view`: one self-contained HTML page for reviewing records by eye.

The page holds everything it needs (styles, script, and the records as JSON), so it opens from
disk with no network: no CDN, no web fonts. The Python side only reads the files, tells each line's
kind apart, and works out what the filters need (stop reason, failed, refused, cited policies,
scores); the browser renders a sample's detail only when it is opened and keeps just the visible
rows of the list in the page, so 10,000 samples stay fast.

Kinds: `generate` (and `baseline`) records, `preference` records, evaluation results
(`samples.jsonl` of `aidsafe evaluate`, joined to the records of the same id when those are viewed
too) and errors-file lines (`failed`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean
from typing import Any, Literal

import jinja2
import markupsafe

from aidsafe.metrics.deterministic import is_refusal
from aidsafe.metrics.record_files import BadLine
from aidsafe.state.preference import score_gap

Kind = Literal["generate", "baseline", "preference", "evaluation", "error"]
HERE = Path(__file__).parent
TEMPLATES = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE), autoescape=True, keep_trailing_newline=True)


@dataclass
class ViewData:
    samples: list[dict[str, Any]] = field(default_factory=list)
    bad_lines: list[BadLine] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def kind_of(line: dict[str, Any]) -> Kind | None:
    if "chosen" in line and "rejected" in line:
        return "preference"
    if "thoughts" in line and "response" in line:
        return "baseline" if line.get("stop_reason") == "baseline" else "generate"
    if "run" in line and ("pairwise" in line or "failures" in line):  # a graded sample, with or without failures
        return "evaluation"
    if "error" in line and "id" in line:
        return "error"
    return None


def _cited_policies(line: dict[str, Any], kind: Kind) -> list[str]:
    if kind == "preference":
        thoughts = [*line["chosen"]["thoughts"], *line["rejected"]["thoughts"]]
    else:
        thoughts = [*line.get("thoughts", []), *(r["thought"] for r in line.get("removed_thoughts") or [])]
    return sorted({p for t in thoughts if isinstance(t, dict) for p in t.get("policy_ids") or []})


def _scores(line: dict[str, Any], kind: Kind) -> dict[str, float]:
    scores: dict[str, float] = {}
    if kind == "preference":
        scores = {"chosen score": line["chosen_score"], "rejected score": line["rejected_score"]}
        scores["score gap"] = score_gap(line["chosen_score"], line["rejected_score"])
    if isinstance(line.get("safety"), dict) and line["safety"].get("score") is not None:
        scores["violation (safety gate)"] = line["safety"]["score"]
        if line["safety"].get("thoughts_score") is not None:
            scores["thoughts violation (safety gate)"] = line["safety"]["thoughts_score"]
    if "cost_usd" in line and line["cost_usd"] is not None:
        scores["cost (USD)"] = line["cost_usd"]
    return scores


def _sample(line: dict[str, Any], kind: Kind, where: str) -> dict[str, Any]:
    response = line["chosen"]["response"] if kind == "preference" else line.get("response") or ""
    return {
        "kind": kind,
        "id": str(line.get("id")),
        "where": where,
        "stop": line.get("stop_reason") or ("failed" if kind == "error" else kind),
        "failed": kind == "error",
        "refused": bool(response) and is_refusal(response),
        "policies": _cited_policies(line, kind),
        "scores": _scores(line, kind),
        "record": line,
    }


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any] | BadLine]]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                value = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                yield number, BadLine(str(path), number, f"not UTF-8 ({exc.reason} at byte {exc.start})")
                continue
            except json.JSONDecodeError as exc:
                yield number, BadLine(str(path), number, f"not JSON ({exc.msg}, column {exc.colno})")
                continue
            if not isinstance(value, dict):
                yield number, BadLine(str(path), number, "not a JSON object")
                continue
            yield number, value


def _attach_grades(sample: dict[str, Any], evaluation: dict[str, Any]) -> None:
    """The evaluation's side that graded this record: `baseline` for baseline records, else `run`."""
    side_name = "baseline" if sample["kind"] == "baseline" else "run"
    side = evaluation.get(side_name) or {}
    grades = side.get("grades") or {}
    sample["grades"] = grades
    sample["metrics"] = side.get("metrics") or {}
    sample["pairwise"] = evaluation.get("pairwise") if side_name == "run" else None
    sample["grade_failures"] = [f for f in evaluation.get("failures") or [] if f.get("file") in (side_name, "pair")]
    if grades:
        sample["scores"]["mean grade"] = fmean(g["score"] for g in grades.values())
    sample["failed"] = sample["failed"] or bool(sample["grade_failures"])


def load(paths: Sequence[str | Path]) -> ViewData:
    """Every usable line of `paths`; evaluation results are joined to the viewed records by id."""
    data = ViewData(files=[str(p) for p in paths])
    evaluations: list[tuple[dict[str, Any], str]] = []
    for path in map(Path, paths):
        for number, line in _lines(path):
            if isinstance(line, BadLine):
                data.bad_lines.append(line)
                continue
            kind = kind_of(line)
            where = f"{path.name}:{number}"
            if kind is None:
                message = "not a generate, preference, evaluation or errors-file line"
                data.bad_lines.append(BadLine(str(path), number, message))
            elif kind == "evaluation":
                evaluations.append((line, where))
            else:
                try:
                    data.samples.append(_sample(line, kind, where))
                except (KeyError, TypeError) as exc:
                    data.bad_lines.append(BadLine(str(path), number, f"incomplete {kind} record ({exc})"))
    by_id: dict[str, list[dict[str, Any]]] = {}
    for sample in data.samples:
        by_id.setdefault(sample["id"], []).append(sample)
    for evaluation, where in evaluations:
        graded = [s for s in by_id.get(str(evaluation.get("id")), []) if s["kind"] != "error"]
        if not graded:  # no record beside it: the grades stand alone
            graded = [{**_sample(evaluation, "evaluation", where), "stop": "evaluation"}]
            data.samples.extend(graded)
        for sample in graded:
            _attach_grades(sample, evaluation)
    return data


def render(data: ViewData, title: str = "aidsafe view", labelling: dict[str, Any] | None = None) -> str:
    """The page: styles and script inline, the samples as JSON inside a `<script>` data block.
    `labelling` (the annotator and the fields, `viewer/labelling.py`) adds the labelling panel."""
    page = TEMPLATES.get_template("page.html.j2")
    payload = {
        "samples": data.samples,
        "files": data.files,
        "bad_lines": [str(b) for b in data.bad_lines],
        "labelling": labelling,
    }
    scripts = ["viewer.js", *(["labelling.js"] if labelling else [])]
    assets = {name: markupsafe.Markup((HERE / name).read_text(encoding="utf-8")) for name in ("viewer.css", *scripts)}
    script = markupsafe.Markup("\n").join(assets[name] for name in scripts)
    return page.render(title=title, payload=payload, style=assets["viewer.css"], script=script)


def write(paths: Sequence[str | Path], output: Path) -> ViewData:
    data = load(paths)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(data, title=f"aidsafe view: {', '.join(Path(p).name for p in paths)}"), encoding="utf-8")
    return data
