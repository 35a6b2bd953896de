// The app's webhooks (GET /v1/webhooks) and, for each, its recent attempts with their last
// answers (GET /v1/webhooks/{id}/deliveries), loaded when opened.

import { api } from "../api.js";
import { badge, h, json, note, number, panel, table, time } from "../dom.js";
import { failure, fill } from "./common.js";

function attempts(webhook) {
  const body = h("div", { class: "attempts" }, note("loading", "Loading…"));
  let loaded = false;
  return h("details", {
    class: "webhook-attempts",
    ontoggle: async (event) => {
      if (!event.target.open || loaded) return;
      loaded = true;
      try {
        const data = await api(`/v1/webhooks/${encodeURIComponent(webhook.id)}/deliveries`, { params: { limit: 50 } });
        body.replaceChildren(table([
          { label: "Event", cell: (a) => a.type },
          { label: "Status", cell: (a) => badge(a.status) },
          { label: "Attempts", cell: (a) => number(a.attempts), class: "num" },
          { label: "Last answer", cell: (a) => [a.last_status_code ?? "", a.last_error ? " " + a.last_error : ""].join("") || "—" },
          { label: "Last attempt", cell: (a) => time(a.last_attempt_at) },
          { label: "Next attempt", cell: (a) => time(a.next_attempt_at) },
          { label: "Payload", cell: (a) => h("details", {}, h("summary", {}, "show"), json(a.payload)) },
        ], data.items, { empty: "No events sent to this webhook yet." }));
      } catch (error) {
        body.replaceChildren(failure(error));
      }
    },
  }, h("summary", {}, "Recent attempts"), body);
}

export function render(view) {
  const results = panel("Each webhook, the events it gets and its recent attempts", { wide: true, id: "webhooks" });
  view.append(h("div", { class: "page-head" }, h("h1", {}, "Webhooks")), results.card);
  fill(results, async () => {
    const data = await api("/v1/webhooks");
    if (!data.items.length) return note("empty", "No webhooks yet.");
    return data.items.map((w) => h("article", { class: "webhook", "data-id": w.id },
      h("h3", {}, h("span", { class: "mono" }, w.url), " ", badge(w.enabled ? "enabled" : "disabled")),
      h("p", { class: "hint" }, `Events: ${w.events.join(", ")} · failures in a row: ${w.failures}` +
        (w.disabled_reason ? ` · disabled: ${w.disabled_reason}` : "") +
        ` · added ${time(w.created_at)}`),
      attempts(w)));
  });
}
