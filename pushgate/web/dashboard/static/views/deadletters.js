// The dead-letter queue (GET /v1/dead-letters: reason, provider, queue, cursor pages): each
// message that ran out of attempts, its last provider answer (GET /v1/dead-letters/{id}), and
// a replay button (POST /v1/dead-letters/{id}/replay) that sends it through the pipeline again.

import { api } from "../api.js";
import { facts, h, json, link, note, number, panel, shortId, table, time } from "../dom.js";
import { failure, fill, filterForm, instant, pager } from "./common.js";

function replayButton(item, status) {
  return h("button", {
    type: "button", class: "replay", "data-id": item.id,
    onclick: async (event) => {
      const button = event.target;
      button.disabled = true;
      status.replaceChildren(note("loading", `Replaying ${item.id}…`));
      try {
        const answer = await api(`/v1/dead-letters/${encodeURIComponent(item.id)}/replay`, { method: "POST" });
        status.replaceChildren(note("ok", `Replayed ${number(answer.replayed)} message` +
          `${answer.replayed === 1 ? "" : "s"}: ${item.id} is being delivered again.`));
        button.textContent = "Replayed";
      } catch (error) {
        button.disabled = false;
        status.replaceChildren(failure(error));
      }
    },
  }, "Replay");
}

function showDetail(item, target) {
  return async () => {
    target.replaceChildren(note("loading", "Loading…"));
    try {
      const d = await api(`/v1/dead-letters/${encodeURIComponent(item.id)}`);
      const answer = d.last_answer || {};
      target.replaceChildren(h("h3", {}, "Dead letter ", h("span", { class: "mono" }, d.id)), facts([
        ["Queue", d.queue], ["Reason", `${d.reason}${d.reason_code ? " (" + d.reason_code + ")" : ""}`],
        ["Provider", d.provider || "—"],
        ["Notification", d.notification_id ? link(`/notifications/${d.notification_id}`, d.notification_id) : "—"],
        ["Delivery", d.delivery_id ?? "—"], ["Attempts", number(d.attempts)],
        ["Failed at", time(d.failed_at)], ["Replays", number(d.replays)],
        ["Provider's last answer", `${answer.status_code ?? "—"} ${answer.error || ""}`],
      ]), h("details", {}, h("summary", {}, "Message body"), json(d.body)));
    } catch (error) {
      target.replaceChildren(failure(error));
    }
  };
}

export function render(view, { params, go }) {
  const title = params.get("replayed") === "true" ? "Messages already replayed"
    : "Messages that ran out of attempts (not replayed yet)";
  const results = panel(title, { wide: true, id: "dead-letters" });
  const status = h("div", { class: "status-line", "aria-live": "polite" });
  const detail = h("div", { class: "detail", id: "dead-letter-detail" });
  view.append(
    h("div", { class: "page-head" }, h("h1", {}, "Dead letters")),
    filterForm([
      { name: "reason", label: "Reason code", placeholder: "e.g. retry_later" },
      { name: "provider", label: "Provider", options: ["", "fcm", "apns", "webpush"] },
      { name: "queue", label: "Queue", placeholder: "any" },
      { name: "since", label: "Failed since", type: "datetime-local" },
      { name: "until", label: "Failed before", type: "datetime-local" },
      { name: "replayed", label: "Show", options: [["", "not replayed"], ["true", "replayed"]] },
    ], params, go),
    status, results.card, detail);
  fill(results, async () => {
    const page = await api("/v1/dead-letters", { params: {
      reason: params.get("reason"), provider: params.get("provider"), queue: params.get("queue"),
      since: instant(params.get("since")), until: instant(params.get("until")),
      replayed: params.get("replayed"), cursor: params.get("cursor"), limit: 50,
    } });
    return [table([
      { label: "Failed at", cell: (d) => time(d.failed_at) },
      { label: "Id", cell: (d) => h("button", { type: "button", class: "linkish mono", onclick: showDetail(d, detail) }, shortId(d.id)) },
      { label: "Queue", cell: (d) => d.queue },
      { label: "Reason", cell: (d) => [d.reason, " ", h("code", {}, d.reason_code)] },
      { label: "Provider", cell: (d) => d.provider || "—" },
      { label: "Notification", cell: (d) => (d.notification_id ? link(`/notifications/${d.notification_id}`, shortId(d.notification_id)) : "—"), class: "mono" },
      { label: "Attempts", cell: (d) => number(d.attempts), class: "num" },
      { label: "Replays", cell: (d) => number(d.replays), class: "num" },
      { label: "", cell: (d) => replayButton(d, status) },
    ], page.items, { empty: "The dead-letter queue is empty.", rowClass: () => "dead-letter" }),
    pager(params, page.next_cursor, go)];
  });
}
