// What several views share: showing a failed call in a panel, filter forms kept in the
// address's query string, and cursor pages.

import { ApiError, SignedOut } from "../api.js";
import { h, note } from "../dom.js";

/** What a panel shows when its call failed; a route this server lacks is "not available". */
export function failure(error) {
  if (error instanceof SignedOut) return note("error", error.message);
  if (error instanceof ApiError && error.status === 404 && error.message === "Not Found") {
    return note("unavailable", "Not available on this server.");
  }
  if (error instanceof ApiError) return note("error", `${error.status || ""} ${error.code}: ${error.message}`);
  return note("error", String(error && error.message || error));
}

/** Runs `load` and puts its nodes (or its failure) in `target`. */
export async function fill(target, load) {
  try {
    target.show(...[await load()].flat());
  } catch (error) {
    target.show(failure(error));
    if (!(error instanceof ApiError)) console.error(error);
  }
}

/**
 * A filter form whose fields mirror the query string. `fields` = [{name, label, type, options}];
 * submitting navigates to the same path with the new query (dropping the page cursor).
 */
export function filterForm(fields, params, go) {
  const inputs = fields.map((f) => {
    const value = params.get(f.name) ?? "";
    const control = f.options
      ? h("select", { name: f.name }, f.options.map((o) => {
        // An option is a value shown as itself ("" as "any"), or a [value, label] pair.
        const [option, label] = Array.isArray(o) ? o : [o, o || "any"];
        return h("option", { value: option, selected: option === value }, label);
      }))
      : h("input", { name: f.name, type: f.type || "text", value, placeholder: f.placeholder,
        autocomplete: "off" });
    return h("label", {}, h("span", {}, f.label), control);
  });
  return h("form", {
    class: "filters",
    onsubmit: (event) => {
      event.preventDefault();
      const query = new URLSearchParams();
      for (const [name, value] of new FormData(event.target)) {
        if (String(value).trim()) query.set(name, String(value).trim());
      }
      go(query);
    },
  }, inputs, h("button", { type: "submit" }, "Search"));
}

/** A datetime-local value (the viewer's time) as the API's ISO 8601 instant. */
export function instant(local) {
  if (!local) return undefined;
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

/** First page / next page links for a cursor-paged list. */
export function pager(params, nextCursor, go) {
  const page = Number(params.get("page") || "1");
  const to = (cursor, number) => {
    const query = new URLSearchParams(params);
    if (cursor) { query.set("cursor", cursor); query.set("page", String(number)); }
    else { query.delete("cursor"); query.delete("page"); }
    go(query);
  };
  return h("nav", { class: "pager", "aria-label": "pages" },
    h("button", { type: "button", disabled: page <= 1, onclick: () => to(null, 1) }, "First page"),
    h("span", {}, `Page ${page}`),
    h("button", { type: "button", class: "next", disabled: !nextCursor,
      onclick: () => to(nextCursor, page + 1) }, "Next page"));
}
