// Usage logs: the request log with filters, pages, and a CSV of the filtered rows.
// Pages go by the API's cursor: Next follows the answer's nextCursor, and the cursors
// that led here are kept on a stack in the page, so Previous goes back the same way.

import { api } from "./api.js";
import { csv, download } from "./csv.js";
import { announce, field, h, heading, table } from "./dom.js";
import { count, moment, status } from "./format.js";
import { dollars } from "./money.js";

const PAGE_SIZE = 50;
const CSV_PAGE = 100; // the API's largest page
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

  // The cursors of the pages before this one: stack[0] is the first page's (none).
  const stack = [null];
  let total = null; // from the first page's answer: the API counts on that page only (up to 1,000)
  let loading = false;

  const [answer, models, keys] = await Promise.all([
    api("GET", "/api/usage/logs", { query: { ...filters, pageSize: PAGE_SIZE } }),
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
  total = { count: answer.total, exact: answer.totalIsExact };
  show(answer, null);

  function counted() {
    if (total.exact) return `${count(total.count)} ${total.count === 1 ? "request" : "requests"}`;
    return `more than ${count(total.count)} requests`;
  }

  /** Render a page's rows and its pager; ``moved`` names the button that led here, to keep focus on it. */
  function show(page, moved) {
    results.setAttribute("aria-busy", "false");
    if (!page.items.length && stack.length === 1) {
      results.replaceChildren(h("p", {}, Object.keys(filters).length ? "No requests match these filters." : "No requests yet."));
      return;
    }
    const number = stack.length;
    const previous = h("button", { type: "button", class: "secondary", disabled: number <= 1, onclick: () => turn(-1, page) }, "Previous");
    const next = h("button", { type: "button", class: "secondary", disabled: !page.nextCursor, onclick: () => turn(1, page) }, "Next");
    results.replaceChildren(
      table("Requests, newest first", COLUMNS, page.items, "compact"),
      h("nav", { class: "pager", "aria-label": "Pages" }, previous, h("span", {}, `Page ${number} (${counted()})`), next),
    );
    if (moved) {
      // The clicked button was replaced: focus its successor, or the other one where it is now disabled.
      const target = moved === "next" ? (next.disabled ? previous : next) : previous.disabled ? next : previous;
      target.focus();
      announce(`Page ${number}.`);
    }
  }

  async function turn(step, page) {
    if (loading) return;
    loading = true;
    // Next follows the answer's cursor; Previous asks again for the page before, by the
    // cursor that led to it. The stack changes only once the page has come.
    const cursor = step > 0 ? page.nextCursor : stack[stack.length - 2];
    results.setAttribute("aria-busy", "true");
    try {
      const answer = await api("GET", "/api/usage/logs", { query: { ...filters, pageSize: PAGE_SIZE, cursor } });
      if (!ctx.current()) return;
      if (step > 0) stack.push(cursor);
      else stack.pop();
      show(answer, step > 0 ? "next" : "previous");
    } catch (error) {
      results.setAttribute("aria-busy", "false");
      announce(`That page could not be loaded. ${error.message}`);
    } finally {
      loading = false;
    }
  }

  /** Every filtered row, newest first: the first page, then each nextCursor to the end.
   * Rows that arrive meanwhile are newer than the first page's first row and stay out;
   * none is missed or repeated, however long it takes. */
  async function exportCsv() {
    exportButton.disabled = true;
    try {
      const rows = [];
      let cursor = null;
      do {
        const part = await api("GET", "/api/usage/logs", { query: { ...filters, pageSize: CSV_PAGE, cursor } });
        rows.push(...part.items.map(csvRow));
        cursor = part.nextCursor;
        announce(`Preparing the CSV: ${count(rows.length)} rows${cursor ? " so far" : ""}.`);
      } while (cursor);
      download(`tokensea-usage-${new Date().toISOString().slice(0, 10)}.csv`, csv(CSV_HEADER, rows));
      announce(`Downloaded ${count(rows.length)} ${rows.length === 1 ? "row" : "rows"}.`);
    } catch (error) {
      announce(`The CSV could not be made. ${error.message}`);
    } finally {
      exportButton.disabled = false;
    }
  }
}
