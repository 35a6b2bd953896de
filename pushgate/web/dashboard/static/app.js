// The dashboard's entry point: routes the address under /dashboard to a view, signs in first
// when no key is kept, and follows in-page links without reloading.

import { DASHBOARD, currentKey, forgetKey, onSignedOut } from "./api.js";
import * as deadLetters from "./views/deadletters.js";
import * as devices from "./views/devices.js";
import * as notifications from "./views/notifications.js";
import * as overview from "./views/overview.js";
import * as signIn from "./views/signin.js";
import * as templates from "./views/templates.js";
import * as webhooks from "./views/webhooks.js";

const ROUTES = [
  [/^\/?$/, "overview", overview.render, "Overview"],
  [/^\/notifications\/?$/, "notifications", notifications.list, "Notifications"],
  [/^\/notifications\/([^/]+)\/?$/, "notifications", notifications.detail, "Notification"],
  [/^\/devices\/?$/, "devices", devices.render, "Devices"],
  [/^\/templates\/?$/, "templates", templates.render, "Templates"],
  [/^\/webhooks\/?$/, "webhooks", webhooks.render, "Webhooks"],
  [/^\/dead-letters\/?$/, "dead-letters", deadLetters.render, "Dead letters"],
];

const main = document.getElementById("view");
const nav = document.getElementById("nav");
const signOutButton = document.getElementById("sign-out");

function here() {
  const path = location.pathname.startsWith(DASHBOARD) ? location.pathname.slice(DASHBOARD.length) : "/";
  return { path: path || "/", params: new URLSearchParams(location.search) };
}

function go(path, query) {
  const search = query && String(query) ? "?" + query : "";
  history.pushState(null, "", DASHBOARD + path + search);
  render();
}

function showSignIn(message, kind = "error") {
  nav.hidden = true;
  signOutButton.hidden = true;
  document.title = "pushgate · sign in";
  const view = document.createElement("div");
  view.className = "view";
  main.replaceChildren(view);
  signIn.render(view, { message, kind, done: render });
}

function render() {
  if (!currentKey()) { showSignIn(""); return; }
  const { path, params } = here();
  nav.hidden = false;
  signOutButton.hidden = false;
  const view = document.createElement("div");
  view.className = "view";
  main.replaceChildren(view);
  for (const [pattern, section, draw, title] of ROUTES) {
    const match = path.match(pattern);
    if (!match) continue;
    document.title = `pushgate · ${title}`;
    for (const a of nav.querySelectorAll("a")) {
      a.classList.toggle("current", a.dataset.section === section);
    }
    draw(view, { params, match, go: (query) => go(path, query) });
    return;
  }
  document.title = "pushgate · not found";
  view.append(Object.assign(document.createElement("h1"), { textContent: "No such page" }));
}

// A refused key (or none) from any call, in any view: back to the sign-in page.
onSignedOut((message) => showSignIn(message));

signOutButton.addEventListener("click", () => {
  forgetKey();
  history.pushState(null, "", DASHBOARD + "/");
  showSignIn("Signed out: the key is forgotten.", "ok");
});

document.addEventListener("click", (event) => {
  const a = event.target.closest("a[data-link]");
  if (!a || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
  const url = new URL(a.href);
  if (!url.pathname.startsWith(DASHBOARD)) return;
  event.preventDefault();
  history.pushState(null, "", url.pathname + url.search);
  render();
});

window.addEventListener("popstate", render);
render();
