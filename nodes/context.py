"""Run configuration for every aidsafe graph, and the one definition of each setting's valid range.

Fields carry a description in their metadata so Studio renders them as a form, and `changes`: the
graphs whose results the setting changes (`batch/settings.py` puts those in the run's fingerprint). Values come from
`graph.invoke(..., context=...)`, from `config["configurable"]` (how LangServe and Studio pass
them), or from environment variables, in that order. API keys are never fields: they are read
from the environment when a client is built, so they never reach checkpoints or traces.

A setting's range is its annotation (`Annotated[int, Interval(ge=1)]`, a URL check): `Context` is a
pydantic dataclass, so the Python API, LangGraph (which builds the context from a dict), Studio and
LangServe refuse a bad value when the run starts, and the CLI derives each flag's check from the
same annotation (`setting_parser`). Other settings (batch options, the server's) follow the same
pattern on their own dataclasses. To add a bounded setting: annotate it here, nothing else.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Mapping
from dataclasses import field, fields
from functools import cache, cached_property
from types import MappingProxyType
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from annotated_types import Interval
from langchain_core.runnables import RunnableConfig
from langgraph.runtime import get_runtime
from pydantic import AfterValidator, ConfigDict, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass

from aidsafe.policies import PolicySet, load_policies
from aidsafe.state.contrast import DEFAULT_MIX, MAX_VARIANTS, Mix, parse_mix

EMBEDDED = "embedded"
"""`base_url` value meaning: start (once per process) the bundled llama.cpp server and use it."""

Role = Literal["initializer", "deliberator", "refiner", "whisperer", "generator", "judge"]
StructuredOutput = Literal["auto", "json_schema", "json_object", "function_calling"]
ScorerFormat = Literal["aidsafe", "http", "gpt-oss-safeguard", "llama-guard"]
"""How the violation scorer is asked (`nodes/scorer.py`): aidsafe's LLM judge with its rubric, the HTTP
classifier at `scorer_url`, or a served guard model in its own documented format (`nodes/guard_judge.py`)."""
GraphName = Literal[
    "deliberation", "gated deliberation", "baseline", "preference", "evaluation", "bench", "contrast", "revision"
]
"""The graphs a batch runs; a setting's `changes` metadata names those whose results it changes."""

EVERY_GRAPH: frozenset[GraphName] = frozenset(typing.get_args(GraphName))
DELIBERATING: frozenset[GraphName] = frozenset({"deliberation", "gated deliberation", "preference", "revision"})
"""The graphs that run the deliberation team (the preference graph's chosen side is one; a revision
reruns its rounds)."""
JUDGED: frozenset[GraphName] = frozenset(
    {"gated deliberation", "preference", "evaluation", "bench", "contrast", "revision"}
)
"""The graphs with a judge role (the revision's triage call and the contrast check are)."""
NO_GRAPH: frozenset[GraphName] = frozenset()
"""How a run is carried out (retries, timeouts, where the server is), not what it produces."""


def _base_url(value: str) -> str:
    if value == EMBEDDED:
        return value
    urls = endpoint_urls(value)
    if not urls:
        raise ValueError("must not be empty")
    for url in urls:
        _url(url)
    return ",".join(urls)


def endpoint_urls(base_url: str) -> list[str]:
    """The endpoints of a `base_url` value: one URL, or several separated by commas (the batch
    engine spreads requests over them; see `batch/endpoints.py`)."""
    return [url.strip() for url in base_url.split(",") if url.strip()]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL such as http://127.0.0.1:8000/v1")
    return value


AtLeastOne = Annotated[int, Interval(ge=1)]
AtLeastZero = Annotated[int, Interval(ge=0)]
Seconds = Annotated[float, Interval(gt=0)]
Name = Annotated[str, AfterValidator(_not_blank)]
BaseUrl = Annotated[str, AfterValidator(_base_url)]
"""An http(s) URL, several separated by commas (endpoints of one model), or 'embedded' for the bundled model."""
Url = Annotated[str, AfterValidator(_url)]
Deliberators = AtLeastOne
"""Deliberating agents per round: a graph-building argument, bounded like the context's settings."""

DEFAULT_MAX_PROMPT_CHARS = 16_000
"""About 4,000 tokens: past that a prompt no longer fits the embedded model's context beside the
policies. Raise it (`--max-prompt-chars`) for servers with long contexts."""


@dataclass(kw_only=True, config=ConfigDict(validate_default=True))
class Context:
    model: Name = field(
        default_factory=lambda: os.environ.get("AIDSAFE_MODEL", "SmolLM2-135M-Instruct"),
        metadata={
            "changes": EVERY_GRAPH,
            "description": "Model name sent to the server, used by every role without an override.",
        },
    )
    base_url: BaseUrl = field(
        default_factory=lambda: os.environ.get("OPENAI_BASE_URL", EMBEDDED),
        metadata={
            "changes": NO_GRAPH,
            "description": "OpenAI-compatible base URL (e.g. http://127.0.0.1:8000/v1); several endpoints "
            "of one model separated by commas; 'embedded' runs the bundled SmolLM2-135M on llama.cpp.",
        },
    )
    temperature: Annotated[float, Interval(ge=0, le=2)] = field(
        default=0.7, metadata={"changes": EVERY_GRAPH, "description": "Sampling temperature."}
    )
    max_rounds: AtLeastOne = field(
        default=3, metadata={"changes": DELIBERATING, "description": "Deliberation round budget."}
    )
    policy_file: str | None = field(
        default=None,
        metadata={
            "changes": EVERY_GRAPH,
            "description": "YAML/JSON policy file; empty uses the five AIDSAFE policies.",
        },
    )
    max_tokens: AtLeastOne = field(
        default=512, metadata={"changes": EVERY_GRAPH, "description": "Cap on tokens per model answer."}
    )
    structured_output: StructuredOutput = field(
        default="auto",
        metadata={
            "changes": EVERY_GRAPH,
            "description": "How answers are constrained: json_schema (OpenAI, strict; vLLM, SGLang, Ollama, "
            "llama-server), json_object with a schema (llama-cpp-python's server, the embedded model's), "
            "function_calling; auto asks each server what it is (GET /models) and picks json_object only "
            "for llama-cpp-python.",
        },
    )
    parse_retries: AtLeastZero = field(
        default=2,
        metadata={
            "changes": NO_GRAPH,
            "description": "Re-asks after an answer that does not parse, error shown to the model.",
        },
    )
    http_retries: AtLeastZero = field(
        default=3,
        metadata={
            "changes": NO_GRAPH,
            "description": "Retries with backoff on timeouts, connection errors, 408, 409, 429 and 5xx "
            "(model calls and the HTTP safety classifier).",
        },
    )
    request_timeout: Seconds = field(
        default=120.0, metadata={"changes": NO_GRAPH, "description": "Seconds per model request."}
    )
    initializer_model: Name | None = field(
        default=None, metadata={"changes": DELIBERATING, "description": "Model override for the initializer."}
    )
    deliberator_model: Name | None = field(
        default=None, metadata={"changes": DELIBERATING, "description": "Model override for deliberators."}
    )
    refiner_model: Name | None = field(
        default=None, metadata={"changes": DELIBERATING, "description": "Model override for the refiner."}
    )
    whisperer_model: Name | None = field(
        default=None,
        metadata={"changes": frozenset({"preference"}), "description": "Model override for the ear-whisperer."},
    )
    generator_model: Name | None = field(
        default=None,
        metadata={
            "changes": frozenset({"baseline", "preference", "contrast"}),
            "description": "Model override for the whispered generator and the contrast prompts' writer.",
        },
    )
    judge_model: Name | None = field(
        default=None, metadata={"changes": JUDGED, "description": "Model override for judges and graders."}
    )
    judge_base_url: BaseUrl | None = field(
        default=None,
        metadata={
            "changes": NO_GRAPH,
            "description": "Server for the judge when it is not the generator's server (or several, with commas).",
        },
    )
    whisper_iterations: AtLeastOne = field(
        default=3,
        metadata={
            "changes": frozenset({"preference"}),
            "description": "Ear-whisperer attempts per prompt (at least one); stops early at the threshold.",
        },
    )
    violation_threshold: Annotated[float, Interval(ge=0, le=1)] = field(
        default=0.75,
        metadata={
            "changes": frozenset({"preference"}),
            "description": "Violation score (0..1) of a rejected sample that ends the whisper loop early.",
        },
    )
    safety_threshold: Annotated[float, Interval(ge=0, le=1)] | None = field(
        default=None,
        metadata={
            "changes": frozenset({"gated deliberation", "evaluation"}),
            "description": "Safety gate: the violation scorer rates every final response; above this score "
            "(0..1) the record is flagged and left out of the SFT export. Unset: no gate in batch generate, "
            "0.5 in the gated graph (served, Studio).",
        },
    )
    scorer_url: Url | None = field(
        default=None,
        metadata={
            "changes": frozenset({"gated deliberation", "preference", "evaluation"}),
            "description": "HTTP safety classifier that replaces the LLM judge as violation scorer: "
            'receives a POST with JSON {prompt, thoughts, response, policies, part}, answers {"score": 0..1}.',
        },
    )

    scorer_format: ScorerFormat | None = field(
        default=None,
        metadata={
            "changes": frozenset({"gated deliberation", "preference", "evaluation"}),
            "description": "How the violation scorer is asked: aidsafe (the LLM judge's rubric, JSON), http (the "
            "classifier at scorer_url), gpt-oss-safeguard or llama-guard (a guard model served behind the OpenAI "
            "API as the judge model, the policy set given in its documented prompt). Unset: http when scorer_url "
            "is set, else aidsafe.",
        },
    )
    check_thoughts: bool | None = field(
        default=None,
        metadata={
            "changes": frozenset({"gated deliberation", "evaluation"}),
            "description": "Safety gate: the violation scorer also rates the chain of thought alone; a record whose "
            "thoughts score above safety_threshold is flagged (safety.thoughts_flagged) and left out of the SFT "
            "export. Unset: on whenever the gate runs (false skips that judge call). evaluate: true rates each "
            "record's response and thoughts (off unless set).",
        },
    )

    contrast_mix: Mix = field(
        default_factory=lambda: parse_mix(DEFAULT_MIX),
        metadata={
            "changes": frozenset({"contrast"}),
            "description": "aidsafe contrast: the share of each class (harmful, borderline, benign) asked for in "
            f"every policy, 0 to 1 each, summing to 1; e.g. {DEFAULT_MIX} (the default). The harmful prompts are "
            "the seeds themselves.",
        },
    )
    contrast_variants: Annotated[int, Interval(ge=1, le=MAX_VARIANTS)] | None = field(
        default=None,
        metadata={
            "changes": frozenset({"contrast"}),
            "description": "aidsafe contrast: look-alikes of each class the writer writes per seed. Unset: enough "
            "for the mix (share of the class / share of harmful, rounded up).",
        },
    )

    @property
    def scorer(self) -> ScorerFormat:
        """The scorer format the run uses: `scorer_format`, else the classifier when `scorer_url` is set."""
        return self.scorer_format or ("http" if self.scorer_url else "aidsafe")

    def model_for(self, role: Role) -> str:
        override: str | None = getattr(self, f"{role}_model", None)
        return override or self.model

    @cached_property
    def policies(self) -> PolicySet:
        """The policy set of `policy_file`, read once per `Context`. A batch's nodes share one
        `Context` holding the set its run started with (`GraphJob.run_context`)."""
        return load_policies(self.policy_file)

    def base_url_for(self, role: Role) -> str:
        return (self.judge_base_url if role == "judge" else None) or self.base_url


CONTEXT_FIELDS = frozenset(f.name for f in fields(Context))


def resolve_context(context: Context | dict[str, Any] | None, config: RunnableConfig | None) -> Context:
    """One place that turns whatever the caller passed into a `Context`.

    `graph.invoke(x)` without `context=` gives `None`; LangServe and Studio put the fields in
    `config["configurable"]`; Python users pass a `Context` or a dict.
    """
    if isinstance(context, Context):
        return context
    values = {k: v for k, v in ((config or {}).get("configurable") or {}).items() if k in CONTEXT_FIELDS}
    values.update({k: v for k, v in (context or {}).items() if k in CONTEXT_FIELDS and v is not None})
    return Context(**values)


def node_context(config: RunnableConfig) -> Context:
    """The running node's settings: its run's context, else what `config` carries (LangServe, Studio)."""
    return resolve_context(get_runtime().context, config)


def allowed(annotation: Any) -> str:
    """The allowed values of an annotated setting in words, for messages: '1 or more', '0 to 2'."""
    interval = next((m for m in _metadata(annotation) if isinstance(m, Interval)), None)
    if interval is None:
        return ""
    low = (
        f"{interval.ge} or more"
        if interval.ge is not None
        else f"more than {interval.gt}"
        if interval.gt is not None
        else ""
    )
    if interval.le is None:
        return low
    return (
        f"{interval.ge if interval.ge is not None else interval.gt} to {interval.le}"
        if low
        else f"at most {interval.le}"
    )


def _metadata(annotation: Any) -> list[Any]:
    found: list[Any] = []
    for arg in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(arg) is Annotated:
            found += arg.__metadata__
    return found


@cache
def setting_annotations(owner: type, *, extras: bool = True) -> Mapping[str, Any]:
    """The field annotations of the dataclass `owner` (with their `Annotated` ranges unless
    `extras` is false), resolved once: every command line builds a parser from them."""
    return MappingProxyType(typing.get_type_hints(owner, include_extras=extras))


def setting_annotation(owner: type, name: str) -> Any:
    """The annotated type of field `name` of the dataclass `owner`: the setting's one definition."""
    return setting_annotations(owner)[name]


def check_value(annotation: Any, value: Any) -> Any:
    """`value` converted and checked against a setting's annotation; `ValueError` names the range."""
    try:
        return _adapter(annotation).validate_python(value)
    except ValidationError as exc:
        raise ValueError(setting_problem(exc.errors()[0], annotation, value)) from None


@cache
def _adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


def setting_problem(error: Any, annotation: Any, value: Any) -> str:
    """One pydantic error in words: "0 is out of range (allowed: 1 or more)"."""
    if error["type"] in _RANGE_ERRORS:
        return f"{value!r} is out of range (allowed: {allowed(annotation)})"
    if error["type"] == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    return f"{error['msg']} (got {value!r})"


_RANGE_ERRORS = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal"})


def context_problems(exc: ValidationError) -> list[tuple[str, str]]:
    """(field, message) for each field a `Context(...)` refused."""
    hints = setting_annotations(Context)
    problems = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else "context"
        problems.append((name, setting_problem(error, hints.get(name), error.get("input"))))
    return problems
