// Small DOM helpers: elements built with text nodes only (never innerHTML, so nothing the API
// returns is parsed as markup), tables, pagers and the formats every view shares.

import { DASHBOARD } from "./api.js";

const SVG_NS = "http://www.w3.org/2000/svg";

function build(element, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "text") {
      element.textContent = value;
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** An HTML element: h("p", {class: "note"}, "text", h("b", {}, "bold")). */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element, the same way. */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** A link inside the dashboard, followed without reloading the page. */
export function link(path, ...children) {
  return h("a", { href: DASHBOARD + path, "data-link": true }, ...children);
}

export function badge(value) {
  const text = value ?? "—";
  return h("span", { class: "badge badge-" + String(text).replace(/[^a-z0-9_-]/gi, "") }, text);
}

const pad = (n) => String(n).padStart(2, "0");

/** A timestamp in the viewer's time zone, to the second. */
export function time(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function number(value) {
  return value === null || value === undefined ? "—" : Number(value).toLocaleString("en");
}

export function percent(rate) {
  return rate === null || rate === undefined ? "—" : (rate * 100).toFixed(1) + " %";
}

export function ms(value) {
  if (value === null || value === undefined) return "—";
  return value >= 1000 ? (value / 1000).toFixed(2) + " s" : Math.round(value) + " ms";
}

/** An id cut to its end: UUIDv7s made close together share their first (time) digits. */
export function shortId(id) {
  return id ? "…" + String(id).slice(-10) : "—";
}

export function json(value) {
  return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
}

export function note(kind, text) {
  return h("p", { class: "note note-" + kind, role: kind === "error" ? "alert" : null }, text);
}

/** A table: `columns` = [{label, cell: (row) => node or text, class?}]. */
export function table(columns, rows, { empty = "Nothing here.", rowClass } = {}) {
  if (!rows.length) return note("empty", empty);
  return h("div", { class: "table-wrap" },
    h("table", {},
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", {
        class: c.class && c.class.includes("num") ? "num" : null }, c.label)))),
      h("tbody", {}, rows.map((row) => h("tr", { class: rowClass ? rowClass(row) : null },
        columns.map((c) => h("td", { class: c.class }, c.cell(row))))))));
}

/** Key/value lines (a <dl>). */
export function facts(pairs) {
  return h("dl", { class: "facts" },
    pairs.filter(([, v]) => v !== undefined).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

/** A panel on a page: a titled card whose body `fill` fills in (or explains why not). */
export function panel(title, { wide = false, id } = {}) {
  const body = h("div", { class: "panel-body" }, note("loading", "Loading…"));
  const card = h("section", { class: wide ? "panel wide" : "panel", id, "aria-busy": "true" },
    h("h2", {}, title), body);
  return {
    card,
    show(...nodes) { body.replaceChildren(...nodes); card.removeAttribute("aria-busy"); },
  };
}
