"""Codex CLI (``@openai/codex``, pinned in ``package.json``) in ``codex exec``, configured
as the README says: on an OpenAI model (the Responses API relayed as sent) and on a
Claude model (translated to Messages). The answer is printed, a shell command the model
asks for runs and its output goes back, and every call is billed exactly."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.edge.billing import anthropic_cost, responses_cost
from tests.gateway import Gateway

CONFIG = """
model = "{model}"
model_provider = "tokensea"

[model_providers.tokensea]
name = "TokenSea"
base_url = "{url}/v1"
env_key = "TOKENSEA_API_KEY"
wire_api = "responses"
"""


def codex(clients: Path, gateway: Gateway, key: str, model: str, prompt: str, scratch: Path) -> subprocess.CompletedProcess[str]:
    home, codex_home, work = scratch / "home", scratch / "codex", scratch / "work"
    for folder in (home, codex_home, work):
        folder.mkdir(parents=True)
    (codex_home / "config.toml").write_text(CONFIG.format(model=model, url=gateway.url))
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "CODEX_HOME": str(codex_home), "TOKENSEA_API_KEY": key}
    return subprocess.run([str(clients / "codex"), "exec", "--skip-git-repo-check", prompt], cwd=work, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300, check=False)


def tool_input(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize("model", ["gpt-4.1", "claude-sonnet-4-6"])
def test_codex_answers_runs_a_tool_and_is_billed_exactly(
    clients: Path, gateway: Gateway, unique: str, model: str, tmp_path: Path
) -> None:
    token, key, _ = gateway.funded(unique, "1000")
    tag = "m" + uuid.uuid4().hex[:10]
    prompt = f"{tag} check the build !tool=exec_command !toolinput={tool_input({'cmd': 'echo ts-tool-ok'})}"
    done = codex(clients, gateway, key, model, prompt, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("w0 w1 w2 w3 w4"), done.stdout[-2000:]  # the final answer, printed
    first, second = gateway.fake.requests_for(tag)
    if model == "gpt-4.1":
        assert first.path.endswith("/v1/responses") and first.body["model"] == "gpt-upstream"
        assert first.body["store"] is False and first.body["stream"] is True  # what Codex sends, relayed
        (output,) = [item for item in second.body["input"] if item.get("type") == "function_call_output"]
        assert "ts-tool-ok" in output["output"]  # the command ran, its output went back
    else:
        assert first.path.endswith("/v1/messages") and first.body["model"] == "claude-upstream"
        names = {tool["name"] for tool in first.body["tools"]}
        assert "exec_command" in names and "web_search" not in names
        (result,) = [block for block in second.body["messages"][-1]["content"] if block["type"] == "tool_result"]
        assert "ts-tool-ok" in json.dumps(result["content"])
    costs = [anthropic_cost(r.usage) if r.provider == "anthropic" else responses_cost(r.usage) for r in (first, second)]
    assert Decimal(gateway.settled(token, 2)["usedQuota"]) == sum(costs)
