"""Claude Code (``@anthropic-ai/claude-code``, pinned in ``package.json``) in ``claude -p``,
configured as the README says: on a Claude model (its Messages calls relayed as sent)
and on a GPT model (for which it puts a system message among the turns and asks for
adaptive thinking: translated to Chat Completions). The answer is printed and billed
exactly."""

from __future__ import annotations

import os
import subprocess
import uuid
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.edge.billing import anthropic_cost, openai_cost
from tests.gateway import Gateway


@pytest.mark.parametrize("model", ["claude-sonnet-4-6", "gpt-4.1"])
def test_claude_code_answers_and_is_billed_exactly(
    clients: Path, gateway: Gateway, unique: str, model: str, tmp_path: Path
) -> None:
    assert httpx.head(f"{gateway.url}/").status_code == 200  # its connectivity probe (here the console's page)
    token, key, _ = gateway.funded(unique, "1000")
    tag = "m" + uuid.uuid4().hex[:10]
    env = {
        "PATH": os.environ["PATH"], "HOME": str(tmp_path), "ANTHROPIC_BASE_URL": gateway.url, "ANTHROPIC_API_KEY": key,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1",
    }
    done = subprocess.run([str(clients / "claude"), "-p", f"{tag} say hello !words=7", "--model", model],
                          cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    assert done.stdout.strip() == "w0 w1 w2 w3 w4 w5 w6"
    records = gateway.fake.requests_for(tag)
    assert records, "Claude Code made no call through the gateway"
    if model == "gpt-4.1":
        sent = records[-1].body
        assert records[-1].path.endswith("/chat/completions") and sent["model"] == "gpt-upstream"
        assert "system" in [m["role"] for m in sent["messages"][1:]]  # its mid-conversation system message, kept in place
        expected = sum(openai_cost(r.usage) for r in records)
    else:
        assert all(r.path.endswith("/v1/messages") and r.body["model"] == "claude-upstream" for r in records)
        expected = sum(anthropic_cost(r.usage) for r in records)
    assert Decimal(gateway.settled(token, len(records))["usedQuota"]) == expected
