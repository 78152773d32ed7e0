"""The model relay: authenticate a key, admit the request's worst case, forward it to
the provider that serves the model (translating between the OpenAI and Anthropic
protocols where they differ), stream the answer back as it arrives, and settle the
exact charge."""
