// Usage logs: the request log with filters, pages, and a CSV of the filtered rows.

import { api } from "./api.js";
import { csv, download } from "./csv.js";
import { announce, field, h, heading, pager, table } from "./dom.js";
import { count, moment, status } from "./format.js";
import { dollars } from "./money.js";

const PAGE_SIZE = 50;
const CSV_LIMIT = 10_000; // rows; beyond that, narrow the dates
const DATE = /^\d{4}-\d{2}-\d{2}$/;

/** The API's filters from the page's: the "To" day is included, so the API's
 * exclusive ``to`` is the next day. */
function apiFilters(params) {
  const query = {};
  if (params.get("model")) query.model = params.get("model");
  if (params.get("tokenId")) query.tokenId = params.get("tokenId");
  if (DATE.test(params.get("from") || "")) query.from = params.get("from");
  const to = params.get("to") || "";
  if (DATE.test(to)) {
    const next = new Date(`${to}T00:00:00Z`);
    next.setUTCDate(next.getUTCDate() + 1);
    query.to = next.toISOString().slice(0, 10);
  }
  return query;
}

const COLUMNS = [
  ["Time", (r) => h("time", { datetime: r.createdAt, title: r.createdAt, text: moment(r.createdAt) })],
  ["Key", (r) => r.tokenName],
  ["Model", (r) => r.model],
  ["Endpoint", (r) => [r.endpoint, r.stream ? h("span", { class: "tag", text: "stream" }) : null]],
  ["Prompt", (r) => count(r.promptTokens)],
  ["Cache read", (r) => count(r.cacheReadTokens)],
  ["Cache write", (r) => count(r.cacheWriteTokens)],
  ["Completion", (r) => count(r.completionTokens)],
  ["Cost", (r) => h("span", { class: "money", text: dollars(r.cost) })],
  ["Latency", (r) => `${count(r.latencyMs)} ms`],
  ["Status", (r) => h("span", { class: `badge ${r.status}`, text: status(r.status) })],
];

const CSV_HEADER = ["time", "request_id", "key", "key_id", "model", "provider", "endpoint", "stream", "prompt_tokens", "cache_read_tokens", "cache_write_tokens", "completion_tokens", "cost_cents", "cost_usd", "latency_ms", "status", "usage_source"];

function csvRow(r) {
  return [r.createdAt, r.requestId, r.tokenName, r.tokenId, r.model, r.provider, r.endpoint, r.stream, r.promptTokens, r.cacheReadTokens, r.cacheWriteTokens, r.completionTokens, r.cost, dollars(r.cost).replace("$", ""), r.latencyMs, r.status, r.usageSource];
}

export async function logs(view, ctx) {
  const params = ctx.params;
  const page = Math.max(1, Number.parseInt(params.get("page") || "1", 10) || 1);
  const filters = apiFilters(params);
  const results = h("div", { "aria-busy": "true" }, h("p", { class: "loading" }, "Loading…"));
  const model = h("select", { name: "model" }, h("option", { value: "" }, "All models"));
  const key = h("select", { name: "tokenId" }, h("option", { value: "" }, "All keys"));
  const from = h("input", { name: "from", type: "date" });
  const to = h("input", { name: "to", type: "date" });
  from.value = DATE.test(params.get("from") || "") ? params.get("from") : "";
  to.value = DATE.test(params.get("to") || "") ? params.get("to") : "";
  const exportButton = h("button", { type: "button", class: "secondary", onclick: () => exportCsv() }, "Download CSV");
  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Filter the logs" },
    field("Model", model),
    field("Key", key),
    field("From", from),
    field("To", to),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Apply filters"), h("button", { type: "button", class: "secondary", onclick: () => ctx.go("logs") }, "Clear")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [name, control] of [["model", model], ["tokenId", key], ["from", from], ["to", to]]) {
      if (control.value) next.set(name, control.value);
    }
    ctx.go("logs", next);
  });
  view.append(heading("Usage logs"), form, h("div", { class: "bar" }, h("p", { class: "hint" }, "Times are in your time zone; the From and To days are UTC days, both included."), exportButton), results);

  const [answer, models, keys] = await Promise.all([
    api("GET", "/api/usage/logs", { query: { ...filters, page, pageSize: PAGE_SIZE } }),
    api("GET", "/api/models"),
    api("GET", "/api/tokens", { query: { pageSize: 100 } }),
  ]);
  const knownModels = new Set(models.map((m) => m.id));
  if (params.get("model") && !knownModels.has(params.get("model"))) models.push({ id: params.get("model") });
  model.append(...models.map((m) => h("option", { value: m.id }, m.id)));
  model.value = params.get("model") || "";
  if (params.get("tokenId") && !keys.items.some((k) => k.id === params.get("tokenId"))) {
    keys.items.push({ id: params.get("tokenId"), name: "(a deleted key)", keyPrefix: "" });
  }
  key.append(...keys.items.map((k) => h("option", { value: k.id }, k.keyPrefix ? `${k.name} (${k.keyPrefix}…)` : k.name)));
  key.value = params.get("tokenId") || "";

  results.setAttribute("aria-busy", "false");
  if (!answer.items.length) {
    results.replaceChildren(h("p", {}, Object.keys(filters).length ? "No requests match these filters." : "No requests yet."));
  } else {
    const go = (n) => {
      const next = new URLSearchParams(params);
      next.set("page", String(n));
      ctx.go("logs", next);
    };
    results.replaceChildren(
      table("Requests, newest first", COLUMNS, answer.items, "compact"),
      pager(page, PAGE_SIZE, answer.total, go, answer.total === 1 ? "request" : "requests"),
    );
  }

  async function exportCsv() {
    exportButton.disabled = true;
    try {
      const rows = [];
      let total = 0;
      for (let n = 1; rows.length < CSV_LIMIT; n += 1) {
        const part = await api("GET", "/api/usage/logs", { query: { ...filters, page: n, pageSize: 100 } });
        total = part.total;
        rows.push(...part.items.map(csvRow));
        announce(`Preparing the CSV: ${count(rows.length)} of ${count(Math.min(total, CSV_LIMIT))} rows.`);
        if (part.items.length < 100 || rows.length >= total) break;
      }
      download(`tokensea-usage-${new Date().toISOString().slice(0, 10)}.csv`, csv(CSV_HEADER, rows.slice(0, CSV_LIMIT)));
      announce(total > CSV_LIMIT ? `Downloaded the newest ${count(CSV_LIMIT)} of ${count(total)} rows; narrow the dates for the rest.` : `Downloaded ${count(rows.length)} rows.`);
    } catch (error) {
      announce(`The CSV could not be made. ${error.message}`);
    } finally {
      exportButton.disabled = false;
    }
  }
}
