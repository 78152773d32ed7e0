import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.relay import prompts, tokens


def test_image_payloads_are_replaced_by_an_allowance() -> None:
    picture = "data:image/png;base64," + "A" * 100_000
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "what is this"},
                                                      {"type": "image_url", "image_url": {"url": picture}}]}]}
    size = len(orjson.dumps(body))
    assert prompts.openai_bound(body, size) == size - len(picture) + prompts.IMAGE_TOKENS
    claude = {"messages": [{"role": "user", "content": [{"type": "image", "source": {
        "type": "base64", "media_type": "image/png", "data": "A" * 50_000}}]}], "tools": [{"name": "t"}]}
    size = len(orjson.dumps(claude))
    assert prompts.anthropic_bound(claude, size) == size - 50_000 + prompts.IMAGE_TOKENS + prompts.TOOLS_TOKENS


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(min_size=0, max_size=300), min_size=1, max_size=5))
def test_the_bound_is_never_below_a_real_token_count(texts: list[str]) -> None:
    tokens._load()  # the real tokenizer, not the fallback heuristic
    body = {"messages": [{"role": "user", "content": text} for text in texts]}
    bound = prompts.openai_bound(body, len(orjson.dumps(body)))
    assert bound >= tokens.count("".join(texts))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(min_size=0, max_size=300), min_size=1, max_size=5), st.booleans())
def test_a_responses_bound_is_never_below_a_real_token_count(texts: list[str], stored: bool) -> None:
    tokens._load()
    body: dict[str, object] = {"input": [{"role": "user", "content": [{"type": "input_text", "text": t}]} for t in texts]}
    if stored:  # a stored conversation is not in the body: a whole context window is assumed
        body["previous_response_id"] = "resp_1"
    bound = prompts.responses_bound(body, len(orjson.dumps(body)))
    assert bound >= tokens.count("".join(texts)) + (prompts.STORED_CONTEXT_TOKENS if stored else 0)


def test_a_json_answer_format_counts_like_tools() -> None:
    plain = {"messages": [{"role": "user", "content": "hi"}]}
    asked = {**plain, "response_format": {"type": "json_object"}}
    assert prompts.openai_bound(asked, 100) == prompts.openai_bound(plain, 100) + prompts.TOOLS_TOKENS
    responses = {"input": "hi", "text": {"format": {"type": "json_schema", "schema": {}}}}
    assert prompts.responses_bound(responses, 100) == 100 + prompts.TOOLS_TOKENS
