// Two small SVG charts, drawn by hand (a chart library would outweigh the console).
// Bar lengths come from money.share (BigInt), labels from money.dollars: a chart
// shows the API's exact figures, and each bar's tooltip says them in full.

import { s } from "./dom.js";
import { count } from "./format.js";
import { compare, dollars, share } from "./money.js";

const PAD_LEFT = 12;
const PAD_RIGHT = 12;

function largest(values) {
  return values.reduce((max, value) => (compare(value, max) > 0 ? value : max), "0");
}

function widthOf(container) {
  return Math.max(300, Math.min(1000, Math.round(container.getBoundingClientRect().width) || 720));
}

/**
 * Cost (top) and requests (bottom) per time bucket.
 * ``buckets``: [{label: axis text, title: full name, cost: cents string, requests: int}].
 */
export function usageChart(container, name, buckets) {
  const width = widthOf(container);
  const costTop = 24;
  const costHeight = 120;
  const requestTop = costTop + costHeight + 34;
  const requestHeight = 56;
  const height = requestTop + requestHeight + 24;
  const plot = width - PAD_LEFT - PAD_RIGHT;
  const slot = plot / Math.max(1, buckets.length);
  const bar = Math.max(2, Math.min(36, slot * 0.7));
  const maxCost = largest(buckets.map((b) => b.cost));
  const maxRequests = Math.max(0, ...buckets.map((b) => b.requests));
  const every = Math.max(1, Math.ceil(buckets.length / Math.max(2, Math.floor(plot / 70))));
  const svg = s(
    "svg",
    { class: "chart", role: "img", "aria-label": name, viewBox: `0 0 ${width} ${height}`, width, height },
    s("text", { x: PAD_LEFT, y: costTop - 8, class: "axis-title" }, `Cost (largest ${dollars(maxCost)})`),
    s("text", { x: PAD_LEFT, y: requestTop - 8, class: "axis-title" }, `Requests (largest ${count(maxRequests)})`),
    s("line", { x1: PAD_LEFT, x2: width - PAD_RIGHT, y1: costTop + costHeight, y2: costTop + costHeight, class: "baseline" }),
    s("line", { x1: PAD_LEFT, x2: width - PAD_RIGHT, y1: requestTop + requestHeight, y2: requestTop + requestHeight, class: "baseline" }),
  );
  buckets.forEach((bucket, index) => {
    const x = PAD_LEFT + index * slot + (slot - bar) / 2;
    const costLength = share(bucket.cost, maxCost, costHeight);
    const requestLength = maxRequests ? Math.round((bucket.requests * requestHeight) / maxRequests) : 0;
    const summary = `${bucket.title}: ${dollars(bucket.cost)}, ${count(bucket.requests)} request${bucket.requests === 1 ? "" : "s"}`;
    svg.append(
      s(
        "g",
        { class: "bucket", "data-bucket": bucket.key },
        s("title", {}, summary),
        s("rect", { class: "hit", x: PAD_LEFT + index * slot, y: costTop, width: slot, height: height - costTop - 20 }),
        s("rect", { class: "cost", x, y: costTop + costHeight - costLength, width: bar, height: costLength }),
        s("rect", { class: "requests", x, y: requestTop + requestHeight - requestLength, width: bar, height: requestLength }),
        index % every === 0 ? s("text", { x: x + bar / 2, y: height - 6, class: "tick", "text-anchor": "middle" }, bucket.label) : null,
      ),
    );
  });
  return svg;
}

/** Cost per model as horizontal bars, each labelled with its exact figures. */
export function modelChart(container, name, rows) {
  const width = widthOf(container);
  const row = 40;
  const height = Math.max(1, rows.length) * row + 8;
  const plot = width - PAD_LEFT - PAD_RIGHT;
  const maxCost = largest(rows.map((r) => r.cost));
  const svg = s("svg", { class: "chart", role: "img", "aria-label": name, viewBox: `0 0 ${width} ${height}`, width, height });
  rows.forEach((item, index) => {
    const top = index * row + 4;
    const length = Math.max(compare(item.cost, "0") > 0 ? 2 : 0, share(item.cost, maxCost, plot));
    const summary = `${item.model}: ${dollars(item.cost)}, ${count(item.requestCount)} request${item.requestCount === 1 ? "" : "s"}`;
    svg.append(
      s(
        "g",
        { class: "bucket" },
        s("title", {}, summary),
        s("text", { x: PAD_LEFT, y: top + 14, class: "label" }, summary),
        s("rect", { class: "cost", x: PAD_LEFT, y: top + 20, width: length, height: 12, rx: 2 }),
      ),
    );
  });
  return svg;
}
