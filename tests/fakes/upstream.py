"""A fake upstream that speaks OpenAI's and Anthropic's wire formats over real sockets.

Providers are mounted under path prefixes (``/openai/v1/chat/completions``,
``/openai/v1/responses``, ``/openai/v1/embeddings``, ``/anthropic/v1/messages``; any
other first segment works too, so one fake can play several providers). The Responses
API and embeddings are in ``tests/fakes/openai_more.py``. Behaviour is chosen by
directives in the request's text:

    !tool            answer with a call to the first tool (arguments streamed in pieces);
                     so does a request whose tool choice forces a tool. Once the last
                     message is a tool's result, the answer is text (a loop ends)
    !tool=NAME       call the tool NAME               !toolinput=B64  its input: base64url JSON
    !think           Anthropic: think first (a signed thinking block)
    !reasoning=N     Responses: N reasoning tokens (in output_tokens) and a reasoning item
    !dropstart       cut the connection right after the stream's first event (which,
                     on Anthropic, reported the prompt's usage)
    !cache=N         report N cache-read tokens      !cachewrite=N   N cache-write tokens
    !words=N         answer with N words (one chunk each when streamed)
    !delay=MS        wait MS milliseconds between streamed chunks
    !slow=S          wait S seconds before answering
    !status=CODE     fail with this HTTP status (429, 500, 529, 400, 401 ...)
    !retry-after=V   with it, a Retry-After header of V
    !fail-on=NAME    apply !status only when called under the prefix NAME
    !drop            cut the connection mid-answer          !garbage   send a malformed event
    !badshape        send valid JSON of the wrong shape (mid-stream, or as the whole answer)
    !midstream-error send the protocol's error event mid-stream
    !nousage         report no usage                          !length   stop at max tokens

Usage is deterministic and recorded with each request, so tests can check the exact
bill: prompt tokens = words in the request's texts + 7, output tokens = answer words.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes import openai_more
from tests.fakes.plans import Plan, calls_tool, forced, pieces, plan_for


@dataclass
class Record:
    provider: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    usage: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)
    aborted: bool = False  # the gateway hung up before the answer was complete
    ended: float | None = None  # when the answer was done (OpenAI's routes)


class FakeUpstream:
    def __init__(self) -> None:
        self.records: list[Record] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> FakeUpstream:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        assert ready.wait(10), "fake upstream did not start"
        return self

    def _serve(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/{provider}/v1/chat/completions", self.openai)
        app.router.add_post("/{provider}/v1/messages/count_tokens", self.count_tokens)
        app.router.add_post("/{provider}/v1/messages", self.anthropic)
        app.router.add_post("/{provider}/v1/responses", self.responses)
        app.router.add_post("/{provider}/v1/embeddings", self.embeddings)
        app.on_response_prepare.append(self._set_cookie)
        self._runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(self._runner.setup())
        loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        ready.set()
        loop.run_forever()
        loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def most_at_once(self, marker: str) -> int:
        """The most requests containing ``marker`` that were being answered at one time."""
        moments = sorted((t, step) for r in self.requests_for(marker) for t, step in ((r.at, 1), (r.ended or r.at, -1)))
        busy = most = 0
        for _, step in moments:  # an end sorts before a start at the same instant
            busy += step
            most = max(most, busy)
        return most

    def requests_for(self, marker: str) -> list[Record]:
        """The recorded requests whose text contains ``marker``."""
        with self._lock:
            return [r for r in self.records if marker in json.dumps(r.body)]

    # -- shared behaviour ----------------------------------------------------------------

    @staticmethod
    async def _set_cookie(request: web.Request, response: web.StreamResponse) -> None:
        """As both providers do behind Cloudflare: a bot-management cookie on every answer."""
        response.headers.add("Set-Cookie", f"__cf_bm={uuid.uuid4().hex}; Path=/; HttpOnly")

    async def _begin(self, request: web.Request) -> tuple[Record, Plan, web.Response | None]:
        body = await request.json()
        record = Record(request.match_info["provider"], request.path, dict(request.headers), body)
        with self._lock:
            self.records.append(record)
        plan = plan_for(body)
        if plan.has("slow"):
            await asyncio.sleep(plan.number("slow"))
        status = int(plan.directives.get("status") or 0)
        target = plan.directives.get("fail-on")
        if status and (not target or target == record.provider):
            failure = self._error(record.path, status)
            if plan.has("retry-after"):
                failure.headers["Retry-After"] = plan.directives["retry-after"]
            return record, plan, failure
        if plan.has("drop") and not body.get("stream"):
            assert request.transport is not None
            request.transport.close()
            raise ConnectionResetError("dropped on purpose")
        return record, plan, None

    @staticmethod
    def _error(path: str, status: int) -> web.Response:
        message = {401: "invalid x-api-key", 429: "rate limited", 529: "Overloaded"}.get(status, f"fake failure {status}")
        if "/messages" in path:
            kind = {400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_error",
                    529: "overloaded_error"}.get(status, "api_error")
            payload: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": message}}
        else:
            payload = {"error": {"message": message, "type": "server_error" if status >= 500 else "invalid_request_error",
                                 "param": None, "code": None}}
        return web.json_response(payload, status=status)

    @staticmethod
    def _tool(body: dict[str, Any], plan: Plan | None = None) -> str:
        choice = body.get("tool_choice")
        if isinstance(choice, dict):
            name = choice.get("name") or (choice.get("function") or {}).get("name")
            if name:
                return str(name)
        if plan is not None and plan.directives.get("tool"):
            return plan.directives["tool"]
        tool = (body.get("tools") or [{}])[0]
        return str(tool.get("name") or (tool.get("function") or {}).get("name") or "tool")

    @staticmethod
    async def _send(response: web.StreamResponse, data: bytes, plan: Plan) -> None:
        await response.write(data)
        if plan.has("delay"):
            await asyncio.sleep(plan.number("delay") / 1000)

    async def _guarded(self, record: Record, answer: Any) -> web.StreamResponse:
        """Run a streamed answer, noting if the gateway hangs up midway."""
        try:
            return await answer
        except (ConnectionResetError, asyncio.CancelledError):
            record.aborted = True
            raise
        finally:
            record.ended = time.time()

    # -- OpenAI ----------------------------------------------------------------------------

    async def openai(self, request: web.Request) -> web.StreamResponse:
        record, plan, failure = await self._begin(request)
        if failure is not None:
            return failure
        return await self._guarded(record, self._openai(request, record, plan))

    async def _openai(self, request: web.Request, record: Record, plan: Plan) -> web.StreamResponse:
        body = record.body
        cached = int(plan.number("cache"))
        written = int(plan.number("cachewrite"))
        usage: dict[str, Any] = {
            "prompt_tokens": plan.prompt_tokens + cached + written,
            "completion_tokens": len(plan.words),
            "total_tokens": plan.prompt_tokens + cached + written + len(plan.words),
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        }
        if written:
            usage["prompt_tokens_details"]["cache_write_tokens"] = written
        record.usage = {} if plan.has("nousage") else usage
        finish = "length" if plan.has("length") else "stop"
        tool = calls_tool(body, plan)
        base = {"id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "created": int(time.time()), "model": body["model"],
                "system_fingerprint": "fp_fake"}
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": " ".join(plan.words), "refusal": None}
            if tool:
                message = {"role": "assistant", "content": None, "refusal": None, "tool_calls": [
                    {"id": "call_fake1", "type": "function",
                     "function": {"name": self._tool(body, plan), "arguments": json.dumps(plan.tool_input)}}]}
                finish = "tool_calls"
            answer = {**base, "object": "chat.completion",
                      "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}]}
            if not plan.has("nousage"):
                answer["usage"] = usage
            if plan.has("badshape"):
                answer["choices"] = ["x"]
            return web.json_response(answer)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            data = {**base, "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}
            if include_usage:
                data["usage"] = None
            return f"data: {json.dumps(data)}\n\n".encode()

        await self._send(response, chunk({"role": "assistant", "content": "", "refusal": None}), plan)
        if await self._drop_at_start(response, plan):
            return response
        if tool:
            await self._send(response, chunk({"tool_calls": [{"index": 0, "id": "call_fake1", "type": "function",
                                                              "function": {"name": self._tool(body, plan), "arguments": ""}}]}), plan)
            for piece in pieces(json.dumps(plan.tool_input)):
                await self._send(response, chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}), plan)
            finish = "tool_calls"
        else:
            for number, word in enumerate(plan.words):
                if number == 2 and await self._break(response, plan, "openai"):
                    return response
                await self._send(response, chunk({"content": word if number == 0 else f" {word}"}), plan)
        await self._send(response, chunk({}, finish), plan)
        if include_usage and not plan.has("nousage"):
            data = {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}
            await self._send(response, f"data: {json.dumps(data)}\n\n".encode(), plan)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    @staticmethod
    async def _drop_at_start(response: web.StreamResponse, plan: Plan) -> bool:
        """!dropstart: cut the connection right after the stream's first event."""
        if not plan.has("dropstart"):
            return False
        await asyncio.sleep(0.05)
        assert response._req is not None and response._req.transport is not None
        response._req.transport.abort()
        return True

    async def _break(self, response: web.StreamResponse, plan: Plan, protocol: str) -> bool:
        """Break the stream as the plan says; True if the stream is over."""
        if plan.has("drop"):
            await asyncio.sleep(0.05)
            assert response._req is not None and response._req.transport is not None
            response._req.transport.abort()
            return True
        if plan.has("garbage"):
            await response.write(b"data: {this is not json\n\n")
            return False
        if plan.has("badshape"):  # JSON, but a string where an object belongs and a fractional count
            if protocol == "openai":
                await response.write(b'data: {"choices": ["x"], "usage": {"prompt_tokens": 3, "completion_tokens": 2.5}}\n\n')
            else:
                await response.write(b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, "delta": "x"}\n\n')
            return False
        if plan.has("midstream-error"):
            # !midstream-error=nul: a message with a NUL character, which PostgreSQL's text cannot store
            text = b"fake\\u0000overload" if plan.directives["midstream-error"] == "nul" else b"fake overload"
            if protocol == "openai":
                await response.write(b'data: {"error": {"message": "' + text + b'", "type": "server_error"}}\n\n')
            else:
                await response.write(
                    b'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error", "message": "' + text + b'"}}\n\n'
                )
            await response.write_eof()
            return True
        return False

    async def responses(self, request: web.Request) -> web.StreamResponse:
        record, plan, failure = await self._begin(request)
        if failure is not None:
            return failure
        return await self._guarded(record, openai_more.responses(self, request, record, plan))

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        record, plan, failure = await self._begin(request)
        return failure or openai_more.embeddings(record, plan)

    # -- Anthropic -------------------------------------------------------------------------

    async def count_tokens(self, request: web.Request) -> web.Response:
        _, plan, failure = await self._begin(request)
        return failure or web.json_response({"input_tokens": plan.prompt_tokens})

    async def anthropic(self, request: web.Request) -> web.StreamResponse:
        record, plan, failure = await self._begin(request)
        if failure is not None:
            return failure
        return await self._guarded(record, self._anthropic(request, record, plan))

    async def _anthropic(self, request: web.Request, record: Record, plan: Plan) -> web.StreamResponse:
        body = record.body
        usage = {
            "input_tokens": plan.prompt_tokens,
            "cache_creation_input_tokens": int(plan.number("cachewrite")),
            "cache_read_input_tokens": int(plan.number("cache")),
            "output_tokens": len(plan.words),
        }
        record.usage = {} if plan.has("nousage") else usage
        stop = "max_tokens" if plan.has("length") else "end_turn"
        tool = calls_tool(body, plan)
        message_id = f"msg_{uuid.uuid4().hex[:16]}"
        preamble = [] if forced(body) else [{"type": "text", "text": "Let me check."}]  # a forced call says nothing first
        thought = [{"type": "thinking", "thinking": "thinking it over", "signature": "sig_fake"}] if plan.has("think") else []
        if not body.get("stream"):
            content: list[dict[str, Any]] = [*thought, {"type": "text", "text": " ".join(plan.words)}]
            if tool:
                content = [*thought, *preamble,
                           {"type": "tool_use", "id": "toolu_fake1", "name": self._tool(body, plan), "input": plan.tool_input}]
                stop = "tool_use"
            answer: dict[str, Any] = {"id": message_id, "type": "message", "role": "assistant", "model": body["model"],
                                      "content": content, "stop_reason": stop, "stop_sequence": None}
            if not plan.has("nousage"):
                answer["usage"] = usage
            if plan.has("badshape"):
                answer["content"] = [{"type": "text", "text": 7}]
            return web.json_response(answer)
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)

        async def event(name: str, data: dict[str, Any]) -> None:
            await self._send(response, f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode(), plan)

        start_usage = {k: v for k, v in usage.items() if k != "output_tokens"} | {"output_tokens": 1}
        await event("message_start", {"message": {"id": message_id, "type": "message", "role": "assistant", "content": [],
                                                  "model": body["model"], "stop_reason": None, "stop_sequence": None,
                                                  "usage": {} if plan.has("nousage") else start_usage}})
        if await self._drop_at_start(response, plan):
            return response
        index = 0
        if thought:
            await event("content_block_start", {"index": index, "content_block": {"type": "thinking", "thinking": ""}})
            await event("content_block_delta", {"index": index, "delta": {"type": "thinking_delta", "thinking": "thinking it over"}})
            await event("content_block_delta", {"index": index, "delta": {"type": "signature_delta", "signature": "sig_fake"}})
            await event("content_block_stop", {"index": index})
            index += 1
        await event("ping", {})
        if tool:
            if preamble:
                await event("content_block_start", {"index": index, "content_block": {"type": "text", "text": ""}})
                await event("content_block_delta", {"index": index, "delta": {"type": "text_delta", "text": "Let me check."}})
                await event("content_block_stop", {"index": index})
                index += 1
            await event("content_block_start", {"index": index, "content_block": {
                "type": "tool_use", "id": "toolu_fake1", "name": self._tool(body, plan), "input": {}}})
            for piece in ("", *pieces(json.dumps(plan.tool_input))):
                await event("content_block_delta", {"index": index, "delta": {"type": "input_json_delta", "partial_json": piece}})
            await event("content_block_stop", {"index": index})
            stop = "tool_use"
        else:
            await event("content_block_start", {"index": index, "content_block": {"type": "text", "text": ""}})
            for number, word in enumerate(plan.words):
                if number == 2 and await self._break(response, plan, "anthropic"):
                    return response
                await event("content_block_delta", {"index": index, "delta": {
                    "type": "text_delta", "text": word if number == 0 else f" {word}"}})
            await event("content_block_stop", {"index": index})
        delta_usage = {} if plan.has("nousage") else {"output_tokens": len(plan.words)}
        await event("message_delta", {"delta": {"stop_reason": stop, "stop_sequence": None}, "usage": delta_usage})
        await event("message_stop", {})
        await response.write_eof()
        return response
