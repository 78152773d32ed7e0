"""A cheap open-loop HTTP/1.1 load generator for the benchmarks' fixed rate and streams.

httpx costs a millisecond or more of CPU per request: on a slow machine it could not keep
200 req/s even against the mock directly, so it measured itself. This client writes
pre-encoded requests on keep-alive connections (a new one only when every open one is
busy) and parses only the framing: about 50 µs of CPU per request under uvloop. Each
result carries the CPU the generator used, as a share of one core, so a run can show
that the generator was not the bottleneck.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit


class ProtocolError(Exception):
    pass


@dataclass
class Endpoint:
    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        return cls(parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/")

    def request(self, body: bytes, headers: dict[str, str]) -> bytes:
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        return (f"POST {self.path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\ncontent-type: application/json\r\n"
                f"{head}content-length: {len(body)}\r\n\r\n").encode() + body


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, endpoint: Endpoint) -> Connection:
        reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port)
        return cls(reader, writer)

    def close(self) -> None:
        self.writer.close()

    async def head(self) -> tuple[int, dict[bytes, bytes]]:
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw[:-4].split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        return status, headers

    async def chunks(self, headers: dict[bytes, bytes]) -> AsyncIterator[bytes]:
        """The body as it arrives: chunk by chunk if chunked, else in one piece."""
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                data = await self.reader.readexactly(size + 2)
                if size == 0:
                    return
                yield data[:-2]
        elif b"content-length" in headers:
            yield await self.reader.readexactly(int(headers[b"content-length"]))
        else:
            raise ProtocolError("a response with neither content-length nor chunked encoding")

    def reusable(self, headers: dict[bytes, bytes]) -> bool:
        return headers.get(b"connection", b"").lower() != b"close"


class Pool:
    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.idle: list[Connection] = []

    async def take(self) -> Connection:
        return self.idle.pop() if self.idle else await Connection.open(self.endpoint)

    def give(self, connection: Connection) -> None:
        self.idle.append(connection)

    def close(self) -> None:
        for connection in self.idle:
            connection.close()


async def _call(pool: Pool, request: bytes) -> tuple[int, float]:
    """One request: its status and its latency in ms."""
    started = time.perf_counter()
    connection = await pool.take()
    try:
        connection.writer.write(request)
        status, headers = await connection.head()
        async for _ in connection.chunks(headers):
            pass
    except BaseException:
        connection.close()
        raise
    elapsed = (time.perf_counter() - started) * 1000
    if connection.reusable(headers):
        pool.give(connection)
    else:
        connection.close()
    return status, elapsed


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * share) - 1)]


async def open_loop(url: str, headers: dict[str, str], body: bytes, rate: float, seconds: float) -> dict[str, float]:
    """Requests started on a fixed schedule, whatever the answers' pace (no coordinated
    omission): p50 and p99 latency of the successful ones, counts, and the generator's CPU."""
    endpoint = Endpoint.parse(url)
    pool, request = Pool(endpoint), endpoint.request(body, headers)
    latencies: list[float] = []
    failures = 0

    async def one() -> None:
        nonlocal failures
        try:
            status, elapsed = await asyncio.wait_for(_call(pool, request), 30)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ProtocolError, ValueError):
            failures += 1
            return
        if status == 200:
            latencies.append(elapsed)
        else:
            failures += 1

    cpu, begin = time.process_time(), time.perf_counter()
    tasks = []
    for n in range(int(rate * seconds)):
        delay = begin + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    generator_cpu = (time.process_time() - cpu) / (time.perf_counter() - begin)
    pool.close()
    return {"p50": statistics.median(latencies), "p99": _percentile(latencies, 0.99),
            "ok": len(latencies), "failed": failures, "generator_cpu": generator_cpu}


async def stream(url: str, headers: dict[str, str], body: bytes) -> tuple[list[float], int]:
    """One streamed call: the arrival time (ms after sending) of each SSE data event
    carrying JSON, and how many there were."""
    endpoint = Endpoint.parse(url)
    connection = await Connection.open(endpoint)
    try:
        started = time.perf_counter()
        connection.writer.write(endpoint.request(body, headers))
        status, response_headers = await connection.head()
        if status != 200:
            raise ProtocolError(f"status {status}")
        arrivals: list[float] = []
        count, pending = 0, b""
        async for data in connection.chunks(response_headers):
            now = (time.perf_counter() - started) * 1000
            pending += data
            *events, pending = pending.split(b"\n")
            found = sum(1 for line in events if line.startswith(b"data: {"))
            count += found
            if found and len(arrivals) < 100_000:  # a long stream only needs its count
                arrivals.extend([now] * found)
        return arrivals, count
    finally:
        connection.close()


async def streams(url: str, headers: dict[str, str], count: int, chunks: int, gap_ms: int) -> dict[str, float]:
    """Time to the first content event, and the spacing of the events that follow it,
    over ``count`` streams one after another."""
    body = (f'{{"model":"gpt-test","max_tokens":{chunks},"seed":{gap_ms},"stream":true,'
            '"messages":[{"role":"user","content":"stream"}]}').encode()
    first: list[float] = []
    gaps: list[float] = []
    for _ in range(count):
        arrivals, _ = await stream(url, headers, body)
        first.append(arrivals[0])
        gaps.extend(later - earlier for earlier, later in itertools.pairwise(arrivals))
    return {"ttfb": statistics.median(first), "gap": statistics.median(gaps), "gap_p99": _percentile(gaps, 0.99)}


async def long_stream(url: str, headers: dict[str, str], chunks: int) -> int:
    body = f'{{"model":"gpt-test","max_tokens":{chunks},"stream":true,"messages":[{{"role":"user","content":"long"}}]}}'
    _, count = await stream(url, headers, body.encode())
    return count
