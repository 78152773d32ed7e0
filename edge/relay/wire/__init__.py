"""Each protocol's vocabulary, in one module per protocol: its frames and terminator,
its error event, the text an answer carries (for estimates) and how to count a
streamed delta. Adapters (``edge.relay.native``, ``edge.relay.translate``) are built
from these words, so a protocol's wire details live in one place.

``chat``: OpenAI Chat Completions. ``messages``: Anthropic Messages. ``responses``:
OpenAI Responses. Usage, in every convention, is ``edge.relay.usage``.
"""
