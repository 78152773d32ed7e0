"""Hypothesis throws arbitrary JSON at the model routes: never a 500 or an unhandled
error, and nothing is charged for a request that was refused."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.gateway import Gateway

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.text(max_size=20),
                    st.floats(allow_nan=False, allow_infinity=False))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                           max_leaves=12)
roles = st.sampled_from(["user", "assistant", "system", "tool", "developer", "nobody", 3])
messages = st.lists(st.fixed_dictionaries({"role": roles}, optional={"content": json_values, "tool_calls": json_values,
                                                                      "tool_call_id": json_values}), max_size=3)
bodies = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from(["gpt-test", "claude-test", "nope", "", 7]),
        "messages": st.one_of(messages, json_values),
        "max_tokens": st.one_of(st.integers(-5, 2_000_000), json_values),
        "max_completion_tokens": st.integers(-5, 100),
        "stream": st.one_of(st.booleans(), json_values),
        "tools": json_values,
        "tool_choice": json_values,
        "system": json_values,
        "stop": json_values,
        "stream_options": json_values,
        "n": json_values,
        # the Responses API's and embeddings' own fields
        "input": st.one_of(st.text(max_size=20), st.lists(st.fixed_dictionaries(
            {"type": st.sampled_from(["message", "function_call", "function_call_output", "reasoning", "item_reference",
                                      "custom_tool_call", 5])},
            optional={"role": roles, "content": json_values, "call_id": json_values, "name": json_values,
                      "arguments": json_values, "output": json_values, "encrypted_content": json_values}), max_size=3),
            json_values),
        "instructions": json_values,
        "max_output_tokens": st.one_of(st.integers(-5, 20_000_000), json_values),
        "text": json_values,
        "reasoning": json_values,
        "previous_response_id": json_values,
        "parallel_tool_calls": json_values,
        "background": json_values,
        "thinking": json_values,
        "output_config": json_values,
        "response_format": json_values,
    },
)


@pytest.fixture(scope="module")
def key(gateway: Gateway) -> str:
    return gateway.funded("modelfuzzer", "5")[1]


@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/messages", "/v1/messages/count_tokens", "/v1/responses",
                                   "/v1/embeddings"])
@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=bodies)
def test_arbitrary_bodies_get_a_clear_answer(gateway: Gateway, key: str, route: str, body: dict[str, Any]) -> None:
    answer = httpx.post(f"{gateway.url}{route}", content=orjson.dumps(body),
                        headers={"authorization": f"Bearer {key}"}, timeout=30)
    assert answer.status_code < 500 or answer.status_code == 502, answer.text
    if answer.headers.get("content-type", "").startswith("application/json") and answer.status_code >= 400:
        payload = answer.json()
        assert "error" in payload and payload["error"]["message"]


def test_no_unhandled_errors_were_logged(gateway: Gateway) -> None:
    assert "unhandled error" not in gateway.logs()
