"""The built-in model catalogue: current public list prices, in cents per million tokens.

Checked on 2026-11-25 against the providers' model and pricing pages (see the README's
"Catalogue" section for sources and caveats). ``tokensea.toml`` overrides any entry by
its ``id`` and adds others. Retired models stay as aliases of their named successor
at the same price, so clients configured with an old name keep working: the seed's
``claude-sonnet-4-20250514`` (retired 2026-06-15) is served by Claude Sonnet 4.6.
Anthropic's ``cache_write`` is the 5-minute write; OpenAI's is the 30-minute write.
"""

from __future__ import annotations

PROVIDERS = [
    {"name": "openai", "protocol": "openai", "base_url": "https://api.openai.com/v1", "api_key_env": "OPENAI_API_KEY"},
    {
        "name": "anthropic",
        "protocol": "anthropic",
        "base_url": "https://api.anthropic.com",
        "api_key_env": "ANTHROPIC_API_KEY",
    },
]

# id, provider, upstream_model, input, output, cache_read, cache_write, max_output
_ROWS = [
    # Anthropic, current
    ("claude-fable-5-2", "anthropic", "claude-fable-5-2", "800", "4000", "20", "1000", 128000),
    ("claude-opus-5-5", "anthropic", "claude-opus-5-5", "400", "2000", "20", "500", 128000),
    ("claude-sonnet-5-5", "anthropic", "claude-sonnet-5-5", "200", "1000", "10", "250", 128000),
    ("claude-haiku-5-5", "anthropic", "claude-haiku-5-5", "10", "50", "1", "12.5", 128000),
    # Anthropic, legacy but served
    ("claude-fable-5-1", "anthropic", "claude-fable-5-1", "1000", "5000", "25", "1250", 128000),
    ("claude-opus-5", "anthropic", "claude-opus-5", "500", "2500", "50", "625", 128000),
    ("claude-sonnet-5", "anthropic", "claude-sonnet-5", "200", "1000", "20", "250", 128000),
    ("claude-opus-4-8", "anthropic", "claude-opus-4-8", "500", "2500", "50", "625", 128000),
    ("claude-opus-4-5", "anthropic", "claude-opus-4-5-20251101", "500", "2500", "50", "625", 64000),
    ("claude-sonnet-4-6", "anthropic", "claude-sonnet-4-6", "300", "1500", "30", "375", 64000),
    ("claude-haiku-4-5", "anthropic", "claude-haiku-4-5-20251001", "100", "500", "10", "125", 64000),
    ("claude-sonnet-4-5", "anthropic", "claude-sonnet-4-5-20250929", "300", "1500", "30", "375", 64000),
    # Anthropic, retired: kept as aliases of the named successor, at its price
    ("claude-sonnet-4-20250514", "anthropic", "claude-sonnet-4-6", "300", "1500", "30", "375", 64000),
    ("claude-sonnet-4-0", "anthropic", "claude-sonnet-4-6", "300", "1500", "30", "375", 64000),
    ("claude-opus-4-20250514", "anthropic", "claude-opus-4-8", "500", "2500", "50", "625", 128000),
    ("claude-opus-4-1", "anthropic", "claude-opus-4-8", "500", "2500", "50", "625", 128000),
    ("claude-3-5-haiku-latest", "anthropic", "claude-haiku-4-5-20251001", "100", "500", "10", "125", 64000),
    # OpenAI, current
    ("gpt-6.2-astra", "openai", "gpt-6.2-astra", "800", "4000", "40", "1000", 128000),
    ("gpt-6.2-sol", "openai", "gpt-6.2-sol", "200", "1000", "10", "250", 128000),
    ("gpt-6.1-terra", "openai", "gpt-6.1-terra", "100", "500", "5", "125", 128000),
    ("gpt-6-luna", "openai", "gpt-6-luna", "10", "50", "1", "12.5", 128000),
    # OpenAI, older but served
    ("gpt-6.1-sol", "openai", "gpt-6.1-sol", "200", "1000", "10", "250", 128000),
    ("gpt-5.6-sol", "openai", "gpt-5.6-sol", "500", "3000", "50", "625", 128000),
    ("gpt-5.5", "openai", "gpt-5.5", "500", "3000", "50", "0", 128000),
    ("gpt-5.4", "openai", "gpt-5.4", "250", "1500", "25", "0", 128000),
    ("gpt-5.4-mini", "openai", "gpt-5.4-mini", "75", "450", "7.5", "0", 128000),
    ("gpt-5.1", "openai", "gpt-5.1", "125", "1000", "12.5", "0", 128000),
    ("gpt-5", "openai", "gpt-5-2025-08-07", "125", "1000", "12.5", "0", 128000),
    ("gpt-5-mini", "openai", "gpt-5-mini-2025-08-07", "25", "200", "2.5", "0", 128000),
    ("o3", "openai", "o3-2025-04-16", "200", "800", "50", "0", 100000),
    ("gpt-4.1", "openai", "gpt-4.1-2025-04-14", "200", "800", "50", "0", 32768),
    ("gpt-4.1-mini", "openai", "gpt-4.1-mini-2025-04-14", "40", "160", "10", "0", 32768),
    ("gpt-4o", "openai", "gpt-4o-2024-08-06", "250", "1000", "125", "0", 16384),
    ("gpt-4o-mini", "openai", "gpt-4o-mini-2024-07-18", "15", "60", "7.5", "0", 16384),
    # OpenAI, shut down 2026-10-23: aliases of the named replacements
    ("o4-mini", "openai", "gpt-6.1-terra", "100", "500", "5", "125", 128000),
    ("gpt-4.1-nano", "openai", "gpt-6-luna", "10", "50", "1", "12.5", 128000),
    # OpenAI embeddings (POST /v1/embeddings), billed per input token; checked 2026-12-03
    ("text-embedding-3-small", "openai", "text-embedding-3-small", "2", "0", "2", "2", None),
    ("text-embedding-3-large", "openai", "text-embedding-3-large", "13", "0", "13", "13", None),
    ("text-embedding-ada-002", "openai", "text-embedding-ada-002", "10", "0", "10", "10", None),
]

MODELS = [
    {
        "id": row[0],
        "provider": row[1],
        "upstream_model": row[2],
        "input": row[3],
        "output": row[4],
        "cache_read": row[5],
        "cache_write": row[6],
        "max_output_tokens": row[7],
        # Every Anthropic model listed here (4.5 and later, or an alias of one) takes
        # structured output (output_config.format).
        "structured_output": row[1] == "anthropic",
    }
    for row in _ROWS
]
