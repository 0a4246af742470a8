"""Run configuration for every aidsafe graph.

Fields carry a description in their metadata so Studio renders them as a form. Values come from
`graph.invoke(..., context=...)`, from `config["configurable"]` (how LangServe and Studio pass
them), or from environment variables, in that order. API keys are never fields: they are read
from the environment when a client is built, so they never reach checkpoints or traces.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Annotated, Any, Literal

from annotated_types import Interval
from langchain_core.runnables import RunnableConfig

EMBEDDED = "embedded"
"""`base_url` value meaning: start (once per process) the bundled llama.cpp server and use it."""

Role = Literal["initializer", "deliberator", "refiner", "whisperer", "generator", "judge"]
StructuredOutput = Literal["auto", "json_schema", "json_object", "function_calling"]


@dataclass(kw_only=True)
class Context:
    model: str = field(
        default_factory=lambda: os.environ.get("AIDSAFE_MODEL", "SmolLM2-135M-Instruct"),
        metadata={"description": "Model name sent to the server, used by every role without an override."},
    )
    base_url: str = field(
        default_factory=lambda: os.environ.get("OPENAI_BASE_URL", EMBEDDED),
        metadata={
            "description": "OpenAI-compatible base URL (e.g. http://127.0.0.1:8000/v1); "
            "'embedded' runs the bundled SmolLM2-135M on llama.cpp."
        },
    )
    temperature: float = field(default=0.7, metadata={"description": "Sampling temperature."})
    max_rounds: int = field(default=3, metadata={"description": "Deliberation round budget."})
    policy_file: str | None = field(
        default=None,
        metadata={"description": "YAML/JSON policy file; empty uses the five AIDSAFE policies."},
    )
    max_tokens: int = field(default=512, metadata={"description": "Cap on tokens per model answer."})
    structured_output: StructuredOutput = field(
        default="auto",
        metadata={
            "description": "How answers are constrained: json_schema (OpenAI, vLLM), json_object "
            "with a schema (llama.cpp), function_calling; auto picks by server."
        },
    )
    parse_retries: int = field(
        default=2,
        metadata={"description": "Re-asks after an answer that does not parse, error shown to the model."},
    )
    http_retries: int = field(
        default=3,
        metadata={"description": "Retries with backoff on timeouts, 429 and 5xx."},
    )
    request_timeout: float = field(default=120.0, metadata={"description": "Seconds per model request."})
    initializer_model: str | None = field(default=None, metadata={"description": "Model override for the initializer."})
    deliberator_model: str | None = field(default=None, metadata={"description": "Model override for deliberators."})
    refiner_model: str | None = field(default=None, metadata={"description": "Model override for the refiner."})
    whisperer_model: str | None = field(default=None, metadata={"description": "Model override for the ear-whisperer."})
    generator_model: str | None = field(
        default=None, metadata={"description": "Model override for the whispered generator."}
    )
    judge_model: str | None = field(default=None, metadata={"description": "Model override for judges and graders."})
    judge_base_url: str | None = field(
        default=None,
        metadata={"description": "Server for the judge when it is not the generator's server."},
    )
    whisper_iterations: int = field(
        default=3,
        metadata={"description": "Ear-whisperer attempts per prompt (at least one); stops early at the threshold."},
    )
    violation_threshold: float = field(
        default=0.75,
        metadata={"description": "Violation score (0..1) of a rejected sample that ends the whisper loop early."},
    )
    safety_threshold: Annotated[float, Interval(ge=0, le=1)] | None = field(
        default=None,
        metadata={
            "description": "Safety gate (batch generate): the violation scorer rates every final response; "
            "above this score (0..1) the record is flagged and left out of the SFT export. Unset: no gate."
        },
    )
    scorer_url: str | None = field(
        default=None,
        metadata={
            "description": "HTTP safety classifier that replaces the LLM judge as violation scorer: "
            'receives a POST with JSON {prompt, thoughts, response, policies}, answers {"score": 0..1}.'
        },
    )

    def model_for(self, role: Role) -> str:
        override: str | None = getattr(self, f"{role}_model", None)
        return override or self.model

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
