// The app's templates (GET /v1/templates), each at its current version with its locales.

import { api } from "../api.js";
import { h, json, panel, table, time } from "../dom.js";
import { fill, pager } from "./common.js";

export function render(view, { params, go }) {
  const results = panel("Templates, each at its current version", { wide: true, id: "templates" });
  view.append(h("div", { class: "page-head" }, h("h1", {}, "Templates")), results.card);
  fill(results, async () => {
    const page = await api("/v1/templates", { params: { cursor: params.get("cursor"), limit: 50 } });
    return [table([
      { label: "Code", cell: (t) => h("b", { class: "mono" }, t.code) },
      { label: "Version", cell: (t) => String(t.version), class: "num" },
      { label: "Locales", cell: (t) => Object.keys(t.variants || {}).join(", ") },
      { label: "Default", cell: (t) => t.default_locale },
      { label: "Description", cell: (t) => t.description || "—" },
      { label: "Changed", cell: (t) => time(t.created_at) },
      { label: "Variants", cell: (t) => h("details", {}, h("summary", {}, "show"), json(t.variants)) },
    ], page.items, { empty: "No templates yet." }), pager(params, page.next_cursor, go)];
  });
}
