"""Translation between the OpenAI Chat Completions and Anthropic Messages protocols.

``openai_to_anthropic``: an OpenAI client calling a model served over Anthropic's API.
``anthropic_to_openai``: an Anthropic client calling a model served over OpenAI's API.
Each translates the request one way, and the answer (whole or streamed) back. What maps
exactly, what is approximated and what is refused is tabled in the README.
"""
