"""Every output key on every sample: the empty value of each key a graph's output schema declares.

A sample that ends in `error` returns the same keys as one that finished, empty where nothing was
produced, so consumers of graph outputs never special-case failures.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Literal, NotRequired, Union, get_args, get_origin

from pydantic import BaseModel
from typing_extensions import is_typeddict


def empty_value(hint: Any) -> Any:
    """`[]`, `{}`, `""`, `0`, `False`, `None` for an optional type, a TypedDict of empty values."""
    origin = get_origin(hint)
    if origin is Annotated:
        return empty_value(get_args(hint)[0])
    if origin in (Union, types.UnionType):
        return None if type(None) in get_args(hint) else empty_value(get_args(hint)[0])
    if origin is Literal:
        return get_args(hint)[0]
    if is_typeddict(hint):
        return {key: empty_value(value) for key, value in typing.get_type_hints(hint).items()}
    if origin is not None:
        return origin()
    return hint()


def missing_outputs(output_schema: type, state: Mapping[str, Any]) -> dict[str, Any]:
    """The required keys of `output_schema` (a pydantic model or a TypedDict) that `state` lacks,
    each with its empty value. Optional ones (a default, `NotRequired`) stay out, as on success."""
    if isinstance(output_schema, type) and issubclass(output_schema, BaseModel):
        return {
            name: empty_value(field.annotation)
            for name, field in output_schema.model_fields.items()
            if name not in state and field.is_required()
        }
    hints = typing.get_type_hints(output_schema, include_extras=True)
    return {
        key: empty_value(hint)
        for key, hint in hints.items()
        if key not in state and get_origin(hint) is not NotRequired
    }
