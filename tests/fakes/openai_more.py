"""The fake upstream's OpenAI Responses API and embeddings, as OpenAI sends them.

Responses: streamed (typed events with sequence numbers: ``response.created``, each
output item added, its deltas and its done events, then ``response.completed``, or
``response.incomplete`` when ``!length`` cuts it) or whole. Usage is scripted like the
other protocols': ``input_tokens`` = prompt + ``!cache`` + ``!cachewrite`` (cached and
written tokens are inside it, as OpenAI counts), ``output_tokens`` = words + ``!reasoning``.
Tools: a ``function_call`` (or ``custom_tool_call`` for a free-form tool) to the first
tool, or the one named. The break directives (``!drop``, ``!dropstart``, ``!garbage``,
``!badshape``, ``!midstream-error``) break the stream as OpenAI's would break.

Embeddings: one small vector per input, as floats or, when asked (the openai SDK asks),
base64 of little-endian float32; usage ``prompt_tokens`` = words + 7.
"""

from __future__ import annotations

import base64
import json
import struct
import time
import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.fakes.plans import Plan, calls_tool, pieces

if TYPE_CHECKING:
    from tests.fakes.upstream import FakeUpstream, Record


def _tool_item(body: dict[str, Any], plan: Plan, name: str, status: str, arguments: str) -> dict[str, Any]:
    declared = next((t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("name") == name), {})
    if declared.get("type") == "custom":
        value = plan.tool_input.get("input", arguments)
        return {"id": "ctc_fake1", "type": "custom_tool_call", "status": status, "call_id": "call_fake1", "name": name,
                "input": value if status == "completed" else ""}
    return {"id": "fc_fake1", "type": "function_call", "status": status, "call_id": "call_fake1", "name": name,
            "arguments": arguments}


async def responses(fake: FakeUpstream, request: web.Request, record: Record, plan: Plan) -> web.StreamResponse:
    body = record.body
    cached, written, reasoning = int(plan.number("cache")), int(plan.number("cachewrite")), int(plan.number("reasoning"))
    prompt = plan.prompt_tokens + cached + written
    usage = {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
        "output_tokens": len(plan.words) + reasoning,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": prompt + len(plan.words) + reasoning,
    }
    record.usage = {} if plan.has("nousage") else usage
    status = "incomplete" if plan.has("length") else "completed"
    base: dict[str, Any] = {
        "id": f"resp_{uuid.uuid4().hex[:16]}", "object": "response", "created_at": int(time.time()), "status": "in_progress",
        "error": None, "incomplete_details": None, "model": body["model"], "output": [], "parallel_tool_calls": True,
        "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools", []), "usage": None,
        "max_output_tokens": body.get("max_output_tokens"),
    }
    text = " ".join(plan.words)
    thought = {"id": "rs_fake1", "type": "reasoning", "summary": [{"type": "summary_text", "text": "thought"}]}
    if calls_tool(body, plan):
        name = fake._tool(body, plan)
        answer = _tool_item(body, plan, name, "completed", json.dumps(plan.tool_input))
    else:
        answer = {"id": "msg_fake1", "type": "message", "role": "assistant", "status": "completed",
                  "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}
    items = [thought, answer] if reasoning else [answer]
    final = {**base, "status": status, "output": items,
             "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None}
    if not plan.has("nousage"):
        final["usage"] = usage
    if not body.get("stream"):
        if plan.has("badshape"):
            final["output"] = [{"type": "message", "content": 7}]
        return web.json_response(final)

    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    number = 0

    async def event(kind: str, **data: Any) -> None:
        nonlocal number
        await fake._send(response, f"event: {kind}\ndata: {json.dumps({'type': kind, 'sequence_number': number, **data})}\n\n"
                         .encode(), plan)
        number += 1

    await event("response.created", response=base)
    if await fake._drop_at_start(response, plan):
        return response
    await event("response.in_progress", response=base)
    index = 0
    if reasoning:
        await event("response.output_item.added", output_index=0, item={**thought, "summary": []})
        await event("response.reasoning_summary_part.added", item_id="rs_fake1", output_index=0, summary_index=0,
                    part={"type": "summary_text", "text": ""})
        await event("response.reasoning_summary_text.delta", item_id="rs_fake1", output_index=0, summary_index=0,
                    delta="thought")
        await event("response.output_item.done", output_index=0, item=thought)
        index = 1
    if answer["type"] != "message":
        await event("response.output_item.added", output_index=index,
                    item=_tool_item(body, plan, answer["name"], "in_progress", ""))
        encoded = json.dumps(plan.tool_input)
        if answer["type"] == "function_call":
            for piece in pieces(encoded):
                await event("response.function_call_arguments.delta", item_id=answer["id"], output_index=index, delta=piece)
            await event("response.function_call_arguments.done", item_id=answer["id"], output_index=index, arguments=encoded)
        else:
            await event("response.custom_tool_call_input.delta", item_id=answer["id"], output_index=index,
                        delta=answer["input"])
            await event("response.custom_tool_call_input.done", item_id=answer["id"], output_index=index,
                        input=answer["input"])
    else:
        where = {"item_id": "msg_fake1", "output_index": index, "content_index": 0}
        await event("response.output_item.added", output_index=index, item={**answer, "status": "in_progress", "content": []})
        await event("response.content_part.added", **where, part={"type": "output_text", "text": "", "annotations": []})
        for position, word in enumerate(plan.words):
            if position == 2 and await _break(response, plan, number):
                return response
            await event("response.output_text.delta", **where, delta=word if position == 0 else f" {word}", logprobs=[])
        await event("response.output_text.done", **where, text=text, logprobs=[])
        await event("response.content_part.done", **where, part=answer["content"][0])
    await event("response.output_item.done", output_index=index, item=answer)
    await event(f"response.{status}", response=final)
    await response.write_eof()
    return response


async def _break(response: web.StreamResponse, plan: Plan, number: int) -> bool:
    """Break the stream as the plan says, the way OpenAI's would break; True if it is over."""
    if plan.has("drop"):
        assert response._req is not None and response._req.transport is not None
        response._req.transport.abort()
        return True
    if plan.has("garbage"):
        await response.write(b"event: response.output_text.delta\ndata: {this is not json\n\n")
        return False
    if plan.has("badshape"):  # JSON, but the terminator's response is a string
        await response.write(b'event: response.completed\ndata: {"type": "response.completed", "response": "x"}\n\n')
        return False
    if plan.has("midstream-error"):  # as OpenAI sends it: the error nested under "error"
        error = {"type": "error", "sequence_number": number,
                 "error": {"type": "server_error", "code": "server_error", "message": "fake overload", "param": None}}
        await response.write(f"event: error\ndata: {json.dumps(error)}\n\n".encode())
        await response.write_eof()
        return True
    return False


def embeddings(record: Record, plan: Plan) -> web.Response:
    body = record.body
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    usage = {"prompt_tokens": plan.prompt_tokens, "total_tokens": plan.prompt_tokens}
    record.usage = usage
    data = []
    for index, _ in enumerate(inputs):
        vector = [0.5, 0.25 * (index + 1), -0.125]
        encoded: Any = vector
        if body.get("encoding_format") == "base64":
            encoded = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    return web.json_response({"object": "list", "data": data, "model": body["model"], "usage": usage})
