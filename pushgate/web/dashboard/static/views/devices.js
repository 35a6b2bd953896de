// Device search: GET /v1/devices by user, platform, topic and status, a page at a time.

import { api } from "../api.js";
import { badge, h, panel, shortId, table, time } from "../dom.js";
import { fill, filterForm, pager } from "./common.js";

function address(d) {
  const where = d.endpoint ? new URL(d.endpoint).host : d.token;
  if (!where) return "—";
  // A token is a credential to the device: shown cut, as a hint, never whole.
  return h("span", { class: "mono", title: "push address (shortened)" },
    where.length > 24 ? where.slice(0, 12) + "…" + where.slice(-6) : where);
}

export function render(view, { params, go }) {
  const results = panel("Devices", { wide: true, id: "devices" });
  view.append(
    h("div", { class: "page-head" }, h("h1", {}, "Devices")),
    filterForm([
      { name: "user_id", label: "User id", placeholder: "any" },
      { name: "platform", label: "Platform", options: ["", "fcm", "apns", "webpush"] },
      { name: "topic", label: "Topic", placeholder: "any" },
      { name: "status", label: "Status", options: ["", "active", "disabled", "deactivated", "all"] },
    ], params, go),
    results.card);
  fill(results, async () => {
    const page = await api("/v1/devices", { params: {
      user_id: params.get("user_id"), platform: params.get("platform"), topic: params.get("topic"),
      status: params.get("status"), cursor: params.get("cursor"), limit: 50,
    } });
    return [table([
      { label: "Id", cell: (d) => h("span", { class: "mono", title: d.id }, shortId(d.id)) },
      { label: "Platform", cell: (d) => d.platform },
      { label: "Status", cell: (d) => badge(d.status) },
      { label: "User", cell: (d) => d.user_id || "—" },
      { label: "Topics", cell: (d) => (d.topics || []).join(", ") || "—" },
      { label: "Push address", cell: address },
      { label: "Locale", cell: (d) => d.locale || "—" },
      { label: "Registered", cell: (d) => time(d.created_at) },
      { label: "Last seen", cell: (d) => time(d.last_seen_at || d.updated_at) },
    ], page.items, { empty: "No device matches." }), pager(params, page.next_cursor, go)];
  });
}
