// Quick start: snippets for curl, the SDKs, Claude Code and Codex CLI, filled in with
// this server's address, a chosen model, and a chosen key's prefix (the whole key
// was shown once, at creation: the snippets read it from TOKENSEA_KEY).

import { api } from "./api.js";
import { append, copyButton, field, h, heading, uid } from "./dom.js";

function snippets(origin, model, prefix) {
  const json = (value) => JSON.stringify(value);
  const body = (extra) => JSON.stringify({ model, max_tokens: 200, ...extra, messages: [{ role: "user", content: "Hello" }] });
  return [
    ["Your key", "Put the whole key in an environment variable; the snippets below read it from there.", `export TOKENSEA_KEY="${prefix}…"   # paste the whole key`],
    ["curl, OpenAI format", "Chat Completions, for any model in the catalogue.", `curl ${origin}/v1/chat/completions \\\n  -H "Authorization: Bearer $TOKENSEA_KEY" \\\n  -H "Content-Type: application/json" \\\n  -d '${body({})}'`],
    ["curl, Anthropic format", "Messages, for any model in the catalogue.", `curl ${origin}/v1/messages \\\n  -H "x-api-key: $TOKENSEA_KEY" \\\n  -H "anthropic-version: 2023-06-01" \\\n  -H "Content-Type: application/json" \\\n  -d '${body({})}'`],
    ["OpenAI SDK (Python)", "pip install openai", `import os\nfrom openai import OpenAI\n\nclient = OpenAI(base_url=${json(`${origin}/v1`)}, api_key=os.environ["TOKENSEA_KEY"])\nreply = client.chat.completions.create(\n    model=${json(model)},\n    max_tokens=200,\n    messages=[{"role": "user", "content": "Hello"}],\n)\nprint(reply.choices[0].message.content)`],
    ["Anthropic SDK (Python)", "pip install anthropic", `import os\nimport anthropic\n\nclient = anthropic.Anthropic(base_url=${json(origin)}, api_key=os.environ["TOKENSEA_KEY"])\nmessage = client.messages.create(\n    model=${json(model)},\n    max_tokens=200,\n    messages=[{"role": "user", "content": "Hello"}],\n)\nprint(message.content[0].text)`],
    ["Claude Code", "Run Claude Code against TokenSea.", `ANTHROPIC_BASE_URL=${origin} ANTHROPIC_API_KEY="$TOKENSEA_KEY" claude --model ${model}`],
    ["Codex CLI", "Add this to ~/.codex/config.toml, then run: codex exec \"hello\"", `model = ${json(model)}\nmodel_provider = "tokensea"\n\n[model_providers.tokensea]\nname = "TokenSea"\nbase_url = ${json(`${origin}/v1`)}\nenv_key = "TOKENSEA_KEY"\nwire_api = "responses"`],
  ];
}

export async function quickStart(view) {
  view.append(heading("Quick start"), h("p", {}, "Point any OpenAI or Anthropic client at this server and use one of your keys. Copy a snippet, then paste your whole key where it says so."));
  const [keys, models] = await Promise.all([api("GET", "/api/tokens", { query: { pageSize: 100 } }), api("GET", "/api/models")]);
  const usable = keys.items.filter((k) => k.status === "active");
  const key = h("select", { name: "key" }, usable.length ? usable.map((k) => h("option", { value: k.keyPrefix }, `${k.name} (${k.keyPrefix}…)`)) : h("option", { value: "tsk-" }, "No key yet"));
  const model = h("select", { name: "model" }, models.map((m) => h("option", { value: m.id }, m.id)));
  const list = h("div", { class: "snippets" });
  const draw = () => {
    list.replaceChildren(
      ...snippets(window.location.origin, model.value, key.value).map(([title, note, code]) => {
        const titleId = uid("snip");
        return h("section", { class: "snippet", "aria-labelledby": titleId }, h("div", { class: "bar" }, h("h2", { id: titleId, text: title }), copyButton(() => code, titleId)), h("p", { class: "hint", text: note }), h("pre", {}, h("code", { text: code })));
      }),
    );
  };
  key.addEventListener("change", draw);
  model.addEventListener("change", draw);
  append(view, [
    usable.length ? null : h("p", { class: "notice" }, "You have no active key yet. ", h("a", { href: "#/keys" }, "Create one"), " first."),
    h("div", { class: "filters" }, field("Key", key), field("Model", model)),
    list,
  ]);
  draw();
}
