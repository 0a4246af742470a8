"""Dollars: model prices per million tokens, and what a sample's usage cost.

Prices come from a small YAML (or JSON) file, one entry per model, and/or a flag pair that prices
every model the file does not name:

    gpt-4o-mini: {input: 0.15, cached_input: 0.075, output: 0.60}
    gpt-4o: {input: 2.50, cached_input: 1.25, output: 10.00}
    default: {input: 0.20, output: 0.80}

A model is looked up by the name the server answered with: exactly, else the longest entry it
starts with (OpenAI answers `gpt-4o-mini-2024-07-18` for `gpt-4o-mini`), else `default`.
`cached_input` is the price of prompt tokens read from the provider's prompt cache; without it
they cost the `input` price.

Calls made through a provider's Batch API (`--mode batch`) cost its batch price: `batch_input`,
`batch_output` and `batch_cached_input` of a model when given, else its prices times the file's
`batch_discount` (0.5 unless said: OpenAI's and most providers' half price):

    batch_discount: 0.5
    gpt-4o-mini: {input: 0.15, output: 0.60, batch_input: 0.075, batch_output: 0.30}
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import pydantic
import yaml
from annotated_types import Interval
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aidsafe.state.deliberation import Usage

DEFAULT = "default"
PER_TOKEN = 1e-6
"""Prices are per million tokens."""

PerMillionTokens = Annotated[float, Interval(ge=0)]
"""A price in USD per million tokens (0 for a free model)."""
Dollars = Annotated[float, Interval(gt=0)]
"""A spending cap in USD."""


class PriceError(ValueError):
    """An unusable price file or flag, or a model without a price."""


class ModelPrice(BaseModel):
    """USD per million tokens."""

    model_config = ConfigDict(extra="forbid")

    input: PerMillionTokens
    output: PerMillionTokens
    cached_input: PerMillionTokens | None = None
    batch_input: PerMillionTokens | None = None
    batch_output: PerMillionTokens | None = None
    batch_cached_input: PerMillionTokens | None = None

    def batch_price(self, discount: float) -> ModelPrice:
        """What a call through a Batch API costs: the batch prices given, else these times `discount`."""
        cached = self.batch_cached_input
        if cached is None and self.cached_input is not None:
            cached = self.cached_input * discount
        return ModelPrice(
            input=self.input * discount if self.batch_input is None else self.batch_input,
            output=self.output * discount if self.batch_output is None else self.batch_output,
            cached_input=cached,
        )

    def cost(self, input_tokens: int, cached_input_tokens: int, output_tokens: int) -> float:
        cached_price = self.input if self.cached_input is None else self.cached_input
        fresh = input_tokens - cached_input_tokens
        return (fresh * self.input + cached_input_tokens * cached_price + output_tokens * self.output) * PER_TOKEN


BatchDiscount = Annotated[float, Interval(ge=0, le=1)]
DEFAULT_BATCH_DISCOUNT = 0.5
BATCH_DISCOUNT = "batch_discount"
"""The price file's key of the batch discount (every other key is a model)."""


class PriceTable(BaseModel):
    models: dict[str, ModelPrice] = Field(default_factory=dict)
    batch_discount: BatchDiscount = DEFAULT_BATCH_DISCOUNT

    def for_batch(self) -> PriceTable:
        """The table of what the same calls cost through a provider's Batch API."""
        return PriceTable(models={name: price.batch_price(self.batch_discount) for name, price in self.models.items()})

    def price_for(self, model: str) -> ModelPrice | None:
        if model in self.models:
            return self.models[model]
        prefixes = [name for name in self.models if name != DEFAULT and model.startswith(name)]
        if prefixes:
            return self.models[max(prefixes, key=len)]
        return self.models.get(DEFAULT)

    def cost(self, usage: Usage) -> float:
        """USD of `usage`. Tokens the usage does not attribute to a model take the `default` price."""
        total = 0.0
        attributed_in = attributed_out = 0
        for model, tokens in (usage.get("by_model") or {}).items():
            price = self.price_for(model)
            if price is None:
                raise PriceError(f"no price for model {model!r}")
            total += price.cost(tokens["input_tokens"], tokens["cached_input_tokens"], tokens["output_tokens"])
            attributed_in += tokens["input_tokens"]
            attributed_out += tokens["output_tokens"]
        rest_in, rest_out = usage["input_tokens"] - attributed_in, usage["output_tokens"] - attributed_out
        if rest_in or rest_out:
            default = self.models.get(DEFAULT)
            if default is None:
                raise PriceError("tokens from a server that named no model, and no default price")
            total += default.cost(rest_in, 0, rest_out)
        return total

    def check_models(self, models: Iterable[str]) -> None:
        """Fail before the run for a configured model without a price."""
        missing = sorted({m for m in models if self.price_for(m) is None})
        if missing:
            raise PriceError(
                f"no price for model {', '.join(map(repr, missing))}: add it to the price file, "
                "or give --input-price and --output-price for every model"
            )


@pydantic.dataclasses.dataclass(kw_only=True)
class PriceOptions:
    """Where a run's prices come from; each annotation is the valid range (the CLI's flags check it)."""

    prices: Path | None = None
    """YAML (or JSON) price file: model -> {input, output, cached_input}."""
    input_price: PerMillionTokens | None = None
    output_price: PerMillionTokens | None = None
    cached_input_price: PerMillionTokens | None = None

    def table(self) -> PriceTable | None:
        """The price table from the file and/or the flag pair (which sets `default`); None without either."""
        return load_prices(self.prices, self.input_price, self.output_price, self.cached_input_price)


def load_prices(
    path: str | Path | None,
    input_price: float | None = None,
    output_price: float | None = None,
    cached_input_price: float | None = None,
) -> PriceTable | None:
    """The price table from a file and/or the flag pair (which sets `default`); None without either."""
    if input_price is None and output_price is None and cached_input_price is None and path is None:
        return None
    table: dict[str, object] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise PriceError(f"{path}: cannot read the price file ({exc})") from exc
        except yaml.YAMLError as exc:
            raise PriceError(f"{path}: not YAML ({exc})") from exc
        if not isinstance(loaded, dict):
            raise PriceError(f"{path}: a price file maps model names to {{input, output, cached_input}}")
        table.update(loaded)
    if input_price is not None or output_price is not None or cached_input_price is not None:
        if input_price is None or output_price is None:
            raise PriceError("--input-price and --output-price go together")
        table[DEFAULT] = {"input": input_price, "output": output_price, "cached_input": cached_input_price}
    discount = table.pop(BATCH_DISCOUNT, DEFAULT_BATCH_DISCOUNT)
    try:
        return PriceTable(models=table, batch_discount=discount)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in (first["loc"][1:] if first["loc"][0] == "models" else first["loc"]))
        raise PriceError(f"{path or 'price flags'}: {where}: {first['msg']}") from exc
