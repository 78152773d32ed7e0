"""A deliberately cheap OpenAI-compatible upstream for load tests.

A bare asyncio protocol (uvloop when available): HTTP/1.1 keep-alive, canned answers,
no JSON parsing beyond finding ``"stream": true`` in the body. A stream sends as many
chunks as the request's ``max_tokens`` and waits ``seed`` milliseconds between them:
both fields reach the upstream unchanged through any gateway. ``--latency-ms`` delays
every answer, as a provider would.

    python -m tests.bench.mock_upstream --port 9100 [--latency-ms 0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

ANSWER = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1_700_000_000, "model": "gpt-bench",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from the benchmark."},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18,
              "prompt_tokens_details": {"cached_tokens": 0}},
}).encode()
CHUNK = (b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"gpt-bench",'
         b'"choices":[{"index":0,"delta":{"content":"tok "},"logprobs":null,"finish_reason":null}]}\n\n')
FINAL = (b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"gpt-bench",'
         b'"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}\n\n')


def usage_chunk(chunks: int) -> bytes:
    usage = {"prompt_tokens": 12, "completion_tokens": chunks, "total_tokens": 12 + chunks}
    return (b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,'
            b'"model":"gpt-bench","choices":[],"usage":' + json.dumps(usage).encode() + b"}\n\n")


def _number(body: bytes, field: bytes, default: int) -> int:
    start = body.find(field)
    if start < 0:
        return default
    start += len(field)
    end = start
    while end < len(body) and body[end:end + 1].isdigit():
        end += 1
    return int(body[start:end] or default)


class Mock(asyncio.Protocol):
    latency = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].decode("latin-1")
            length = 0
            headers = {}
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if len(self.buffer) < head_end + 4 + length:
                return
            body = self.buffer[head_end + 4: head_end + 4 + length]
            self.buffer = self.buffer[head_end + 4 + length:]
            compact = body.replace(b" ", b"")
            streamed = b'"stream":true' in compact
            chunks, gap = _number(compact, b'"max_tokens":', 20), _number(compact, b'"seed":', 0) / 1000
            asyncio.get_running_loop().create_task(self.answer(streamed, chunks, gap))

    async def answer(self, streamed: bool, chunks: int, gap: float) -> None:
        if self.latency:
            await asyncio.sleep(self.latency)
        if not streamed:
            self.transport.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                + str(len(ANSWER)).encode() + b"\r\n\r\n" + ANSWER
            )
            return
        self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")

        def send(data: bytes) -> None:
            self.transport.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

        for _ in range(chunks):
            if self.transport.is_closing():
                return
            send(CHUNK)
            if gap:
                await asyncio.sleep(gap)
            elif self.transport.get_write_buffer_size() > 1 << 20:
                await asyncio.sleep(0)  # let a slow reader drain
        send(FINAL + usage_chunk(chunks) + b"data: [DONE]\n\n")
        self.transport.write(b"0\r\n\r\n")


async def serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Mock, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    Mock.latency = args.latency_ms / 1000
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    started = time.time()
    try:
        asyncio.run(serve(args.port))
    except KeyboardInterrupt:
        print(f"mock upstream ran {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
