"""Incremental server-sent events: bytes in, complete events out, nothing else kept.

Only the current partial event is buffered, so memory per stream does not depend on
its length. Each event keeps its raw bytes for passthrough forwarding.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_EVENT_BYTES = 16 * 1024 * 1024


class MalformedStream(ValueError):
    """The upstream sent something that is not a server-sent event stream."""


@dataclass(frozen=True, slots=True)
class Event:
    name: str | None
    data: str
    raw: bytes


class Parser:
    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[Event]:
        buffer = self._buffer + chunk if self._buffer else chunk
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        events: list[Event] = []
        start = 0
        while (end := buffer.find(b"\n\n", start)) != -1:
            block = buffer[start:end]
            start = end + 2
            if block.strip():
                events.append(_parse(block))
        self._buffer = buffer[start:]
        if len(self._buffer) > MAX_EVENT_BYTES:
            raise MalformedStream("an upstream event exceeded 16 MB")
        return events

    @property
    def pending(self) -> bytes:
        return self._buffer


def _parse(block: bytes) -> Event:
    name: str | None = None
    data: list[str] = []
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedStream("an upstream event is not UTF-8") from None
    for line in text.split("\n"):
        if not line or line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            data.append(value)
        elif field == "event":
            name = value
    return Event(name, "\n".join(data), block + b"\n\n")


def frame(data: bytes, event: str | None = None) -> bytes:
    """One SSE frame (``data`` must not contain newlines: compact JSON never does)."""
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
