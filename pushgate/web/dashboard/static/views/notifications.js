// Notification search (GET /v1/notifications: status, category, since, until, cursor pages)
// and one notification's page: its status and counters, then each device's outcome with the
// provider's answer (GET /v1/notifications/{id}/deliveries).

import { api } from "../api.js";
import { badge, facts, h, json, link, number, panel, shortId, table, time } from "../dom.js";
import { fill, filterForm, instant, pager } from "./common.js";

const STATUSES = ["", "accepted", "scheduled", "dispatching", "completed", "partially_failed",
  "failed", "expired", "canceled"];
const DELIVERY_STATUSES = ["", "pending", "sending", "retrying", "deferred", "sent", "failed",
  "invalid", "rejected", "expired", "canceled", "skipped"];
const PAGE = 25;

export function list(view, { params, go }) {
  const results = panel("Notifications, newest first", { wide: true, id: "notifications" });
  view.append(
    h("div", { class: "page-head" }, h("h1", {}, "Notifications")),
    filterForm([
      { name: "status", label: "Status", options: STATUSES },
      { name: "category", label: "Category", placeholder: "any" },
      { name: "since", label: "Since", type: "datetime-local" },
      { name: "until", label: "Until", type: "datetime-local" },
    ], params, go),
    results.card);
  fill(results, async () => {
    const page = await api("/v1/notifications", { params: {
      status: params.get("status"), category: params.get("category"),
      since: instant(params.get("since")), until: instant(params.get("until")),
      cursor: params.get("cursor"), limit: PAGE,
    } });
    return [table([
      { label: "Created", cell: (n) => time(n.created_at) },
      { label: "Id", cell: (n) => link(`/notifications/${n.id}`, shortId(n.id)), class: "mono" },
      { label: "Status", cell: (n) => badge(n.status) },
      { label: "Category", cell: (n) => n.category || "—" },
      { label: "Title", cell: (n) => n.title || (n.template ? `template ${n.template.code}` : "—") },
      { label: "Target", cell: (n) => n.target_kind },
      { label: "Devices", cell: (n) => number(n.total), class: "num" },
      { label: "Completed", cell: (n) => time(n.completed_at) },
    ], page.items, { empty: "No notification matches." }), pager(params, page.next_cursor, go)];
  });
}

function counts(value) {
  const entries = Object.entries(value || {}).filter(([, n]) => n);
  if (!entries.length) return "—";
  return h("span", { class: "counts" }, entries.map(([k, n]) => h("span", {}, `${k} ${number(n)}`)));
}

function answer(d) {
  const parts = [];
  if (d.response_code !== null && d.response_code !== undefined) parts.push(h("b", {}, String(d.response_code)));
  if (d.error) parts.push(h("span", { class: "error-text" }, d.error));
  if (d.skip_reason) parts.push(h("span", {}, "skipped: " + d.skip_reason));
  return parts.length ? h("span", { class: "answer" }, parts) : "—";
}

export function detail(view, { params, go, match }) {
  const id = decodeURIComponent(match[1]);
  const summary = panel("Status", { wide: true, id: "notification" });
  const deliveries = panel("Each device's outcome and the provider's answer", { wide: true, id: "deliveries" });
  view.append(
    h("div", { class: "page-head" },
      h("h1", {}, "Notification ", h("span", { class: "mono" }, id)),
      link("/notifications", "← all notifications")),
    summary.card,
    filterForm([{ name: "status", label: "Device outcome", options: DELIVERY_STATUSES }], params, go),
    deliveries.card);
  fill(summary, async () => {
    const n = await api(`/v1/notifications/${encodeURIComponent(id)}`);
    return [
      facts([
        ["Status", badge(n.status)],
        ["Category", n.category || "—"],
        ["Created", time(n.created_at)],
        ["Send at", n.send_at ? time(n.send_at) : undefined],
        ["Dispatched", time(n.dispatched_at)],
        ["Completed", time(n.completed_at)],
        ["Expires", time(n.expires_at)],
        ["Idempotency key", n.idempotency_key || undefined],
        ["Devices", counts(n.counts)],
      ]),
      h("details", {}, h("summary", {}, "Target and metadata"), json({ target: n.target, metadata: n.metadata })),
    ];
  });
  fill(deliveries, async () => {
    const page = await api(`/v1/notifications/${encodeURIComponent(id)}/deliveries`, {
      params: { status: params.get("status"), cursor: params.get("cursor"), limit: 50 },
    });
    return [table([
      { label: "Device", cell: (d) => (d.device_id ? h("span", { class: "mono", title: d.device_id }, shortId(d.device_id)) : "raw token") },
      { label: "Platform", cell: (d) => d.platform },
      { label: "Outcome", cell: (d) => badge(d.status) },
      { label: "Attempts", cell: (d) => number(d.attempts), class: "num" },
      { label: "Provider's answer", cell: answer },
      { label: "Provider message id", cell: (d) => d.provider_message_id || "—", class: "mono wrap" },
      { label: "Sent", cell: (d) => time(d.sent_at) },
      { label: "Updated", cell: (d) => time(d.updated_at) },
    ], page.items, { empty: "No deliveries (yet).", rowClass: (d) => "delivery delivery-" + d.status }),
    pager(params, page.next_cursor, go)];
  });
}
