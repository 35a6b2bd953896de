// The sign-in page: an admin API key, checked against an admin-only route before it is kept
// (in sessionStorage, for this tab only).

import { api, keepKey, SignedOut } from "../api.js";
import { h, note } from "../dom.js";

export function render(view, { message, kind, done }) {
  const error = h("div", { id: "sign-in-error" }, message ? note(kind || "error", message) : null);
  const input = h("input", {
    id: "key", name: "key", type: "password", required: true, autocomplete: "off",
    spellcheck: "false", placeholder: "pgk_…",
  });
  const button = h("button", { type: "submit" }, "Sign in");
  const form = h("form", {
    class: "sign-in", id: "sign-in",
    onsubmit: async (event) => {
      event.preventDefault();
      const key = input.value.trim();
      button.disabled = true;
      error.replaceChildren(note("loading", "Checking the key…"));
      try {
        // Listing webhooks needs an admin key: a send or subscribe key is told so here.
        await api("/v1/webhooks", { key });
        keepKey(key);
        done();
      } catch (failure) {
        const text = failure instanceof SignedOut
          ? (failure.status === 403 ? "This key is not an admin key." : "This key is not valid.")
          : failure.message;
        error.replaceChildren(note("error", text));
        button.disabled = false;
        input.select();
      }
    },
  },
  h("h1", {}, "Sign in"),
  h("p", {}, "Paste an admin API key of your app (", h("code", {}, "pushgate keys create --scope admin"),
    ", or the key printed at the first start). It is kept in this browser tab only and sent to ",
    h("code", {}, "/v1"), " as a Bearer token."),
  h("label", {}, h("span", {}, "Admin API key"), input),
  button, error);
  view.append(form);
  input.focus();
}
