"""Answers from small models: raw control characters inside JSON strings are tolerated."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from aidsafe.state.answers import RefinerAnswer, parse_answer


def test_raw_newline_inside_a_string_is_accepted():
    answer = parse_answer('{"removals": [], "final_response": "one\ntwo"}', RefinerAnswer, None)
    assert answer.final_response == "one\ntwo"


def test_broken_json_still_fails_with_pydantics_message():
    with pytest.raises(ValidationError, match="Invalid JSON"):
        parse_answer('{"removals": [], "final_response": "one', RefinerAnswer, None)
