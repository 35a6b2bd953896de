// The overview: deliveries over time by outcome, success rate and end-to-end latency
// (/v1/analytics/deliveries), queue depths (/v1/queues), circuit states (/v1/circuits) and
// devices per platform (/v1/analytics/devices). Each panel loads on its own: one that fails
// or that this server lacks says so, the others still draw.

import { api } from "../api.js";
import { hbars, lines, stackedBars } from "../charts.js";
import { badge, h, link, ms, note, number, panel, percent, table } from "../dom.js";
import { failure, fill } from "./common.js";

const OUTCOMES = ["sent", "failed", "invalid", "expired", "rejected", "skipped", "canceled"];
const RANGES = {
  "24h": { label: "24 hours", hours: 24, interval: "hour" },
  "7d": { label: "7 days", hours: 24 * 7, interval: "day" },
  "30d": { label: "30 days", hours: 24 * 30, interval: "day" },
};
const HOUR = 3600 * 1000;

function floorTo(date, interval) {
  const d = new Date(date);
  d.setUTCMinutes(0, 0, 0);
  if (interval === "day") d.setUTCHours(0);
  return d;
}

/** Every bucket start from `since` to `until` (UTC hours or days). */
function buckets(since, until, interval) {
  const step = interval === "day" ? 24 * HOUR : HOUR;
  const out = [];
  for (let t = floorTo(since, interval).getTime(); t <= until.getTime(); t += step) out.push(new Date(t));
  return out;
}

/** The API's series laid on `times` (a bucket the API left out had nothing). */
function aligned(times, series, interval) {
  const index = new Map(times.map((t, i) => [t.getTime(), i]));
  const rows = times.map(() => null);
  for (const point of series) {
    const i = index.get(floorTo(new Date(point.time), interval).getTime());
    if (i !== undefined) rows[i] = point;
  }
  return rows;
}

function timeLabel(interval) {
  return (d) => interval === "day"
    ? d.toLocaleDateString("en", { month: "short", day: "numeric" })
    : d.toLocaleTimeString("en", { hour: "2-digit", minute: "2-digit", hour12: false });
}

function headline(label, value, id) {
  return h("div", { class: "stat", id }, h("span", { class: "stat-value" }, value),
    h("span", { class: "stat-label" }, label));
}

async function deliveries(range, panels) {
  const until = new Date();
  const since = new Date(until.getTime() - range.hours * HOUR);
  const data = await api("/v1/analytics/deliveries", {
    params: { since: since.toISOString(), until: until.toISOString(), interval: range.interval },
  });
  const times = buckets(since, until, range.interval);
  const rows = aligned(times, data.series || [], range.interval);
  const at = (read) => rows.map((row) => (row ? read(row) : null));
  const label = timeLabel(range.interval);
  const totals = data.totals || {};
  panels.headlines.show(
    headline("deliveries", number(totals.total), "stat-total"),
    headline("success rate", percent(totals.success_rate), "stat-success"),
    headline("p95 latency", ms(totals.latency_ms && totals.latency_ms.p95), "stat-p95"),
  );
  panels.outcomes.show(stackedBars({
    label: "Deliveries by outcome", times, timeLabel: label, format: number, width: 1240,
    series: OUTCOMES.map((name) => ({ name, values: at((r) => (r.by_outcome || {})[name] || 0) })),
  }));
  panels.success.show(lines({
    label: "Success rate", times, timeLabel: label, max: 1, format: percent,
    series: [{ name: "success rate", values: at((r) => r.success_rate) }],
  }));
  panels.latency.show(lines({
    label: "End-to-end latency", times, timeLabel: label, format: ms,
    series: ["p50", "p95", "p99"].map((p) => ({
      name: p, values: at((r) => (r.latency_ms ? r.latency_ms[p] : null)) })),
  }));
  panels.providers.show(table([
    { label: "Provider", cell: (r) => r.provider },
    { label: "Deliveries", cell: (r) => number(r.total), class: "num" },
    ...["sent", "failed", "invalid", "rejected", "expired"].map((o) => ({
      label: o, cell: (r) => number((r.by_outcome || {})[o] || 0), class: "num" })),
    { label: "Success", cell: (r) => percent(r.success_rate), class: "num" },
    { label: "p95", cell: (r) => ms(r.latency_ms && r.latency_ms.p95), class: "num" },
  ], data.by_provider || [], { empty: "No deliveries in this period." }),
  h("h3", {}, "By category"),
  table([
    { label: "Category", cell: (r) => r.category || "(none)" },
    { label: "Deliveries", cell: (r) => number(r.total), class: "num" },
    { label: "Failed or refused", class: "num", cell: (r) => number(
      ["failed", "invalid", "rejected", "expired"].reduce((n, o) => n + ((r.by_outcome || {})[o] || 0), 0)) },
    { label: "Success", cell: (r) => percent(r.success_rate), class: "num" },
    { label: "p95", cell: (r) => ms(r.latency_ms && r.latency_ms.p95), class: "num" },
  ], data.by_category || [], { empty: "No deliveries in this period." }),
  h("p", { class: "hint" }, "Deliveries that ran out of attempts are in ",
    link("/dead-letters", "the dead-letter queue"), "."));
}

async function queues() {
  const data = await api("/v1/queues");
  const items = data.queues || [];
  return [
    hbars({ label: "Queue depths", items: items.map((q) => ({ name: q.name, value: q.depth })),
      format: number }),
    table([
      { label: "Queue", cell: (q) => q.name },
      { label: "Depth", cell: (q) => number(q.depth), class: "num" },
      { label: "Consumers", cell: (q) => number(q.consumers), class: "num" },
      { label: "In flight", cell: (q) => number(q.in_flight), class: "num" },
      { label: "Per second", cell: (q) => (q.rate_per_second === null || q.rate_per_second === undefined
        ? "—" : Number(q.rate_per_second).toFixed(2)), class: "num" },
    ], items, { empty: "No queues." }),
  ];
}

async function circuits() {
  const data = await api("/v1/circuits");
  const items = data.circuits || [];
  if (!items.length) return note("empty", "Every circuit is closed: no push service is failing.");
  return table([
    { label: "Provider", cell: (c) => c.provider },
    { label: "Origin", cell: (c) => c.origin || "—" },
    { label: "State", cell: (c) => badge(c.state) },
    { label: "Retry in", cell: (c) => (c.state === "closed" || !c.retry_in ? "—"
      : `${Math.ceil(c.retry_in)} s`), class: "num" },
  ], items);
}

async function devices(range) {
  const until = new Date();
  const since = new Date(until.getTime() - Math.max(range.hours, 24 * 7) * HOUR);
  const data = await api("/v1/analytics/devices", {
    params: { since: since.toISOString(), until: until.toISOString() },
  });
  const active = data.active || {};
  const weekAgo = until.getTime() - 24 * 7 * HOUR;
  const week = new Map();
  for (const day of data.days || []) {
    if (new Date(day.day).getTime() < floorTo(new Date(weekAgo), "day").getTime()) continue;
    const row = week.get(day.platform) || { platform: day.platform, new: 0, invalidated: 0, expired: 0, deleted: 0 };
    for (const k of ["new", "invalidated", "expired", "deleted"]) row[k] += day[k] || 0;
    week.set(day.platform, row);
  }
  return [
    hbars({ label: "Active devices per platform", format: number,
      items: Object.entries(active).map(([name, value]) => ({ name, value })) }),
    h("h3", {}, "The last 7 days"),
    table([
      { label: "Platform", cell: (r) => r.platform },
      ...["new", "invalidated", "expired", "deleted"].map((k) => ({
        label: k, cell: (r) => number(r[k]), class: "num" })),
    ], [...week.values()], { empty: "No device changes this week." }),
  ];
}

export function render(view, { params, go }) {
  const chosen = RANGES[params.get("range")] ? params.get("range") : "24h";
  const range = RANGES[chosen];
  const panels = {
    headlines: panel("Totals", { wide: true, id: "panel-totals" }),
    outcomes: panel(`Deliveries by outcome, last ${range.label}`, { wide: true, id: "panel-outcomes" }),
    success: panel("Success rate", { id: "panel-success" }),
    latency: panel("End-to-end latency (accepted to provider's answer)", { id: "panel-latency" }),
    providers: panel("By provider", { wide: true, id: "panel-providers" }),
  };
  const queuesPanel = panel("Queues", { id: "panel-queues" });
  const circuitsPanel = panel("Circuits", { id: "panel-circuits" });
  const devicesPanel = panel("Devices per platform", { id: "panel-devices" });
  view.append(
    h("div", { class: "page-head" },
      h("h1", {}, "Overview"),
      h("div", { class: "ranges", role: "group", "aria-label": "period" },
        Object.entries(RANGES).map(([name, r]) => h("button", {
          type: "button", class: name === chosen ? "chosen" : null, "aria-pressed": String(name === chosen),
          onclick: () => go(new URLSearchParams({ range: name })) }, r.label)),
        h("button", { type: "button", class: "quiet", onclick: () => go(params) }, "Refresh"))),
    h("div", { class: "grid" }, Object.values(panels).map((p) => p.card),
      queuesPanel.card, circuitsPanel.card, devicesPanel.card));
  // One call fills five panels: its failure is shown in each.
  deliveries(range, panels).catch((error) => {
    for (const p of Object.values(panels)) p.show(failure(error));
  });
  fill(queuesPanel, () => queues());
  fill(circuitsPanel, () => circuits());
  fill(devicesPanel, () => devices(range));
}
