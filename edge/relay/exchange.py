"""One model call, from the admitted request to the settled charge.

The flow is the same for every pair of protocols; an ``Adapter`` supplies what
differs. Failures before the answer starts try the model's next route once, then
answer the client in its protocol and charge nothing. A stream forwards each event as
soon as it is complete, holds back only its terminator until the charge is durable, and
ends with the client protocol's error event when the provider breaks off. A client
that disconnects cancels the provider call and is billed for what it was sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from sanic import HTTPResponse, Request

from domain.catalogue import Model, Protocol, Route
from domain.charges import RequestStatus, UsageSource
from domain.usage import TokenUsage
from edge import metrics
from edge.errors import Problem
from edge.relay import prompts, tokens
from edge.relay.keys import Caller
from edge.relay.meter import Meter, OutputLimit, admit
from edge.relay.protocol import Adapter, StreamingAdapter, StreamProcessor
from edge.relay.sse import MalformedStream, Parser
from edge.relay.upstream import UpstreamError, open_call
from edge.services import Services
from ledger import LedgerUnavailable

log = logging.getLogger("tokensea.relay")

MAX_ATTEMPTS = 2  # the primary route, then one retry on the next
# What reading a provider's JSON raises when it has the wrong shape (a string where an
# object belongs, a list too short, a fractional count): the provider's fault, not ours.
_WRONG_SHAPE = (TypeError, KeyError, IndexError, AttributeError, ValueError)
WITHHELD = "the billing ledger was unavailable, so the answer was withheld"


@dataclass(frozen=True)
class Attempt:
    """A route to try, the adapter for its protocol, and the request it will be sent
    (encoded with the granted output limit when it is tried)."""

    route: Route
    adapter: Adapter
    request: dict[str, Any]


def attempts(model: Model, body: dict[str, Any], stream: bool, adapter_for: Callable[[Route], Adapter]) -> list[Attempt]:
    """Prepare each route's request up front: a body a provider cannot take is the
    client's 400, found before anything is reserved."""
    return [
        Attempt(route, adapter, adapter.request(body, route, stream))
        for route in model.routes[:MAX_ATTEMPTS]
        for adapter in (adapter_for(route),)
    ]


@dataclass
class Call:
    svc: Services
    request: Request
    request_id: str
    model: Model
    body: dict[str, Any]
    stream: bool
    meter: Meter
    attempts: list[Attempt]
    upstream_started: float = 0.0

    def upstream_done(self, route: Route) -> None:
        metrics.child(metrics.UPSTREAM_SECONDS, route.provider).observe(time.perf_counter() - self.upstream_started)

    @property
    def headers(self) -> dict[str, str]:
        return {"x-request-id": self.request_id}


def _estimate(call: Call, prompt: TokenUsage | None, output_tokens: int) -> TokenUsage:
    """What an unfinished answer cost: the prompt as the provider reported it (it has
    charged it, even if no text followed), or counted if only text was sent, plus the
    text sent; nothing when the provider reported nothing and nothing was sent."""
    if output_tokens == 0:
        return prompt or TokenUsage()
    if prompt is None:
        prompt = TokenUsage(input=tokens.count(prompts.prompt_text(call.body)))
    return TokenUsage(input=prompt.input, cache_read=prompt.cache_read, cache_write=prompt.cache_write, output=output_tokens)


async def relay(
    svc: Services,
    request: Request,
    caller: Caller,
    model: Model,
    body: dict[str, Any],
    stream: bool,
    *,
    endpoint: str,
    prompt_tokens_bound: int,
    output: OutputLimit | None,
    adapter_for: Callable[[Protocol], Adapter],
) -> HTTPResponse | None:
    """Everything after validation, for any client protocol: prepare each route's
    request (a 400 if none can be expressed), admit the worst case, then run the call.
    ``output``: the client's output limit (None for a call that makes no output)."""

    def adapter(route: Route) -> Adapter:
        return adapter_for(svc.settings.catalogue.providers[route.provider].protocol)

    tries = attempts(model, body, stream, adapter)
    meter = await admit(
        svc, caller, model,
        request_id=request.ctx.request_id,
        endpoint=endpoint,
        stream=stream,
        prompt_tokens_bound=prompt_tokens_bound,
        output=output,
    )
    return await run(Call(svc, request, request.ctx.request_id, model, body, stream, meter, tries))


async def run(call: Call) -> HTTPResponse | None:
    route: Route | None = None
    try:
        route, adapter, upstream = await _open(call)
        if call.stream:
            assert isinstance(adapter, StreamingAdapter), "a call that cannot stream is never asked to"
            await _stream(call, route, adapter, upstream)
            return None
        return await _whole(call, route, adapter, upstream)
    except asyncio.CancelledError:
        # The client went away before its answer started: nothing was delivered.
        if not call.meter.settled:
            call.meter.settle(route, TokenUsage(), RequestStatus.CLIENT_ABORTED, UsageSource.ESTIMATED, "the client disconnected")
        raise
    except BaseException:
        # Whatever failed, the reservation must not outlive the request.
        if not call.meter.settled:
            call.meter.settle(route, TokenUsage(), RequestStatus.ERROR, UsageSource.ESTIMATED, "internal error")
        raise


async def _open(call: Call) -> tuple[Route, Adapter, aiohttp.ClientResponse]:
    svc = call.svc
    last: UpstreamError | None = None
    for number, attempt in enumerate(call.attempts):
        provider = svc.settings.catalogue.providers[attempt.route.provider]
        started = time.perf_counter()
        try:
            response = await open_call(
                svc.http, svc.settings, provider, attempt.adapter.operation,
                attempt.adapter.encode(attempt.request, call.meter.limit),
                attempt.adapter.passthrough_headers(call.request.headers), call.request_id,
            )
            metrics.child(metrics.UPSTREAM_FIRST_BYTE, provider.name).observe(time.perf_counter() - started)
            call.upstream_started = started
            return attempt.route, attempt.adapter, response
        except UpstreamError as exc:
            last = exc
            if not exc.retryable or number == len(call.attempts) - 1:
                break
            log.warning("request %s: %s; retrying on the next route", call.request_id, exc)
    assert last is not None
    call.meter.settle(call.attempts[0].route, TokenUsage(), RequestStatus.ERROR, UsageSource.UPSTREAM, last.message)
    headers = {"retry-after": str(last.retry_after)} if last.retry_after is not None else None
    raise Problem(last.status, last.code, last.message, headers=headers)


async def _whole(call: Call, route: Route, adapter: Adapter, upstream: aiohttp.ClientResponse) -> HTTPResponse:
    try:
        raw = await upstream.read()
        data = orjson.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        body, usage, text = adapter.response(raw, data, call.model.id)
    except (aiohttp.ClientError, TimeoutError, *_WRONG_SHAPE) as exc:
        message = f"the provider's answer could not be read ({type(exc).__name__})"
        call.meter.settle(route, TokenUsage(), RequestStatus.ERROR, UsageSource.UPSTREAM, message)
        raise Problem(502, "upstream_error", message) from None
    finally:
        upstream.release()
    call.upstream_done(route)
    source = UsageSource.UPSTREAM
    if usage is None:  # a whole answer was delivered without usage: count its prompt and text
        usage = TokenUsage(input=tokens.count(prompts.prompt_text(call.body)), output=tokens.count(text))
        source = UsageSource.ESTIMATED
    recorded = call.meter.settle(
        route, usage, RequestStatus.SUCCESS, source, if_unavailable=(TokenUsage(), RequestStatus.ERROR, WITHHELD)
    )
    try:
        await asyncio.shield(recorded)
    except LedgerUnavailable:
        raise Problem(503, "ledger_unavailable", "the billing ledger is unavailable; try again shortly") from None
    return HTTPResponse(body, content_type="application/json", headers=call.headers)


async def _stream(call: Call, route: Route, adapter: StreamingAdapter, upstream: aiohttp.ClientResponse) -> None:
    call.request.ctx.streaming = True
    try:
        response = await call.request.respond(
            content_type="text/event-stream", headers={**call.headers, "cache-control": "no-cache"}
        )
        processor = adapter.stream(call.body, call.model.id)
    except BaseException:
        upstream.close()  # the client is gone (or never got a stream): stop the provider
        raise
    problem = await _pump(call, route, upstream, processor, response)
    call.upstream_done(route)
    usage, source = processor.usage, UsageSource.UPSTREAM
    if usage is None or problem is not None:
        delivered = processor.delivered.flush()
        if usage is None or not delivered:
            usage, source = _estimate(call, processor.reported_prompt, delivered), UsageSource.ESTIMATED
    if problem is None:
        recorded = call.meter.settle(
            route, usage, RequestStatus.SUCCESS, source, if_unavailable=(usage, RequestStatus.ERROR, WITHHELD)
        )
        try:
            await asyncio.shield(recorded)
            await response.send(processor.closing())
        except LedgerUnavailable:
            await response.send(processor.error(WITHHELD, "ledger_unavailable"))
    else:
        log.warning("request %s: stream broke off: %s", call.request_id, problem)
        call.meter.settle(route, usage, RequestStatus.ERROR, source, problem)
        await response.send(processor.error(problem, "upstream_error"))
    await response.eof()
    metrics.observe(call.request, 200)


def _translate(parser: Parser, processor: StreamProcessor, chunk: bytes) -> tuple[bytes, str | None]:
    """What the client is sent for ``chunk``, and why the stream is broken if an event is
    not what the provider's protocol promises (malformed, or valid JSON of the wrong
    shape). The events before the bad one are still sent: they were counted as delivered."""
    out = []
    try:
        for event in parser.feed(chunk):
            if processor.finished or processor.upstream_error is not None:
                break  # nothing after the end or an error counts, or is sent
            out.append(processor.feed(event))
    except MalformedStream as exc:
        return b"".join(out), str(exc)
    except _WRONG_SHAPE as exc:
        return b"".join(out), f"an event of an unexpected shape ({type(exc).__name__})"
    return b"".join(out), None


async def _pump(
    call: Call, route: Route, upstream: aiohttp.ClientResponse, processor: StreamProcessor, response: Any
) -> str | None:
    """Forward events until the provider's terminator; the reason it broke off, if it did."""
    parser = Parser()
    idle = call.svc.settings.upstream.idle_timeout
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(idle) as deadline:
            while not processor.finished and processor.upstream_error is None:
                deadline.reschedule(loop.time() + idle)
                chunk = await upstream.content.readany()
                if not chunk:
                    break
                data, broken = _translate(parser, processor, chunk)
                if data:
                    await response.send(data)
                if broken is not None:
                    return f"the provider sent a malformed stream: {broken}"
    except asyncio.CancelledError:
        upstream.close()  # stop the provider generating for nobody
        delivered = processor.delivered.flush()
        usage = processor.usage if processor.usage and delivered else _estimate(call, processor.reported_prompt, delivered)
        source = UsageSource.UPSTREAM if processor.usage and delivered else UsageSource.ESTIMATED
        call.meter.settle(route, usage, RequestStatus.CLIENT_ABORTED, source, "the client disconnected")
        raise
    except TimeoutError:
        return f"the provider sent nothing for {idle:g} s"
    except (aiohttp.ClientError, ConnectionError):
        return "the connection to the provider broke"
    finally:
        if not processor.finished:
            upstream.close()
        upstream.release()
    if processor.upstream_error is not None:
        return f"the provider reported an error: {processor.upstream_error}"
    if not processor.finished:
        return "the provider ended the stream before it was complete"
    return None
