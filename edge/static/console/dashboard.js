// Dashboard: the balance (from /api/user/self) and usage over a period (from
// /api/usage/stats, which reads the daily and hourly read models, never the log).

import { api } from "./api.js";
import { modelChart, usageChart } from "./chart.js";
import { h, heading, table } from "./dom.js";
import { count, utcDay, utcHour } from "./format.js";
import { dollars, subtract } from "./money.js";

const PERIODS = [
  { id: "24h", label: "24 hours", days: 0 },
  { id: "7d", label: "7 days", days: 7 },
  { id: "30d", label: "30 days", days: 30 },
];
const DAY = new Intl.DateTimeFormat("en-US", { month: "short", day: "numeric", timeZone: "UTC" });
const HOUR = new Intl.DateTimeFormat("en-GB", { hour: "2-digit", minute: "2-digit", timeZone: "UTC" });

function card(label, value, note) {
  return h("div", { class: "stat" }, h("p", { class: "stat-label", text: label }), h("p", { class: "stat-value", text: value }), note ? h("p", { class: "hint", text: note }) : null);
}

/** Every bucket of the period, the empty ones included, oldest first. */
function buckets(period, stats) {
  const now = new Date();
  const result = [];
  if (period.days === 0) {
    const byHour = new Map((stats.hourlyBreakdown || []).map((row) => [row.hour, row]));
    const top = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate(), now.getUTCHours());
    for (let n = 23; n >= 0; n -= 1) {
      const start = new Date(top - n * 3_600_000);
      const row = byHour.get(utcHour(start));
      result.push({ key: utcHour(start), label: HOUR.format(start), title: `${DAY.format(start)}, ${HOUR.format(start)} UTC`, cost: row ? row.cost : "0", requests: row ? row.requestCount : 0 });
    }
    return result;
  }
  const byDay = new Map(stats.dailyBreakdown.map((row) => [row.date, row]));
  const today = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  for (let n = period.days - 1; n >= 0; n -= 1) {
    const start = new Date(today - n * 86_400_000);
    const row = byDay.get(utcDay(start));
    result.push({ key: utcDay(start), label: DAY.format(start), title: `${DAY.format(start)}, ${start.getUTCFullYear()} (UTC)`, cost: row ? row.cost : "0", requests: row ? row.requestCount : 0 });
  }
  return result;
}

const COLUMNS = [
  ["Requests", (r) => count(r.requestCount)],
  ["Failed", (r) => count(r.failedCount)],
  ["Prompt tokens", (r) => count(r.promptTokens)],
  ["Completion tokens", (r) => count(r.completionTokens)],
  ["Cost", (r) => dollars(r.cost)],
];

function usage(section, period, stats) {
  const spread = buckets(period, stats);
  const unit = period.days === 0 ? "hour" : "day";
  const totals = h("p", { class: "totals" }, `Spent ${dollars(stats.totalCost)} on ${count(stats.totalRequests)} request${stats.totalRequests === 1 ? "" : "s"} in the last ${period.label}.`);
  const chartBox = h("figure", { class: "chart-box" });
  const modelsBox = h("figure", { class: "chart-box" });
  section.replaceChildren(totals, chartBox);
  chartBox.append(
    usageChart(chartBox, `Cost and requests per ${unit}, last ${period.label}`, spread),
    h("figcaption", {}, `Cost and requests per ${unit} (UTC). Hover over or tap a bar for its exact figures.`),
  );
  const rows = spread.filter((b) => b.requests > 0);
  section.append(
    h(
      "details",
      {},
      h("summary", {}, `Show the numbers per ${unit}`),
      rows.length
        ? table(`Usage per ${unit}`, [[unit === "hour" ? "Hour (UTC)" : "Day (UTC)", (b) => b.title], ["Requests", (b) => count(b.requests)], ["Cost", (b) => dollars(b.cost)]], rows)
        : h("p", {}, "No requests in this period."),
    ),
    h("h2", {}, "By model"),
  );
  if (!stats.modelBreakdown.length) {
    section.append(h("p", {}, "No requests in this period yet. ", h("a", { href: "#/quickstart" }, "Quick start"), " shows how to make one."));
    return;
  }
  section.append(modelsBox);
  modelsBox.append(modelChart(modelsBox, `Cost per model, last ${period.label}`, stats.modelBreakdown));
  section.append(table(`Usage per model, last ${period.label}`, [["Model", (r) => r.model], ...COLUMNS], stats.modelBreakdown));
}

export async function dashboard(view, ctx) {
  let period = PERIODS.find((p) => p.id === ctx.params.get("period")) || PERIODS[1];
  const cards = h("div", { class: "cards" });
  const section = h("section", { class: "usage", "aria-label": "Usage", "aria-busy": "true" }, h("p", { class: "loading" }, "Loading…"));
  const buttons = PERIODS.map((p) =>
    h("button", { type: "button", class: "toggle", "aria-pressed": String(p === period), onclick: () => choose(p) }, p.label),
  );
  view.append(heading("Dashboard"), cards, h("div", { class: "bar" }, h("h2", {}, "Usage"), h("div", { class: "toggles", role: "group", "aria-label": "Period" }, buttons)), section);

  async function load() {
    section.setAttribute("aria-busy", "true");
    const stats = await api("GET", "/api/usage/stats", { query: { period: period.id } });
    usage(section, period, stats);
    section.setAttribute("aria-busy", "false");
  }

  async function choose(next) {
    period = next;
    buttons.forEach((button, index) => button.setAttribute("aria-pressed", String(PERIODS[index] === next)));
    window.history.replaceState(null, "", `#/dashboard?period=${next.id}`);
    try {
      await load();
    } catch (error) {
      section.replaceChildren(h("p", { class: "alert", role: "alert", text: error.message }));
    }
  }

  const [me] = await Promise.all([ctx.me, load()]);
  cards.append(
    card("Remaining", dollars(subtract(me.quota, me.usedQuota)), `of ${dollars(me.quota)} granted`),
    card("Used", dollars(me.usedQuota)),
    card("Requests", count(me.requestCount), "since the account was created"),
  );
}
