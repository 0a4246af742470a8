"""Answers from small models: raw control characters inside JSON strings are tolerated."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage
from pydantic import ValidationError

from aidsafe.nodes.llm import parse_answer
from aidsafe.state.answers import RefinerAnswer


def test_raw_newline_inside_a_string_is_accepted():
    answer = parse_answer(AIMessage(content='{"removals": [], "final_response": "one\ntwo"}'), RefinerAnswer, None)
    assert answer.final_response == "one\ntwo"


def test_broken_json_still_fails_with_pydantics_message():
    with pytest.raises(ValidationError, match="Invalid JSON"):
        parse_answer(AIMessage(content='{"removals": [], "final_response": "one'), RefinerAnswer, None)
