// Subscribes this browser with the app's VAPID key and registers it with pushgate.
"use strict";

const logEl = document.getElementById("log");
const log = (line) => { logEl.textContent += line + "\n"; };

function bytesFromBase64Url(text) {
  const padded = (text + "===".slice((text.length + 3) % 4)).replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
}

async function api(path, key, options = {}) {
  const headers = { "Authorization": "Bearer " + key, "Content-Type": "application/json" };
  // An end-user token (not a pgk_ key) names its app.
  const app = document.getElementById("app").value.trim();
  if (app && !key.startsWith("pgk_")) headers["X-Pushgate-App"] = app;
  const response = await fetch(path, { ...options, headers });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = body.error || {};
    throw new Error(`${response.status} ${error.code || ""}: ${error.message || response.statusText}`);
  }
  return body;
}

async function subscribe(event) {
  event.preventDefault();
  logEl.textContent = "";
  const key = document.getElementById("key").value.trim();
  // With an end-user token the user is its `sub`: sending another would be refused.
  const userId = key.startsWith("pgk_") ? document.getElementById("user").value.trim() : "";
  const topics = document.getElementById("topics").value.split(",").map((t) => t.trim()).filter(Boolean);
  if (!("serviceWorker" in navigator) || !("PushManager" in window)) {
    log("This browser does not support Web Push (or the page is not on https/localhost).");
    return;
  }
  try {
    const { public_key: vapidKey } = await api("/v1/webpush/vapid-public-key", key);
    log("VAPID public key: " + vapidKey);
    const registration = await navigator.serviceWorker.register("sw.js");
    await navigator.serviceWorker.ready;
    if ((await Notification.requestPermission()) !== "granted") {
      log("Notifications are blocked for this site: allow them and try again.");
      return;
    }
    const existing = await registration.pushManager.getSubscription();
    if (existing) await existing.unsubscribe();  // the app's key may have changed
    const subscription = await registration.pushManager.subscribe({
      userVisibleOnly: true, applicationServerKey: bytesFromBase64Url(vapidKey),
    });
    const device = await api("/v1/devices", key, {
      method: "POST",
      body: JSON.stringify({
        platform: "webpush", subscription: subscription.toJSON(),
        ...(userId ? { user_id: userId } : {}), ...(topics.length ? { topics } : {}),
      }),
    });
    log("Registered as device " + device.id + " (push service: " + new URL(device.endpoint).host + ")");
    log("Send to it with a send or admin key:");
    log(`curl -s -X POST ${location.origin}/v1/notifications -H "Authorization: Bearer $SEND_KEY" ` +
        `-H 'Content-Type: application/json' -d '{"device_ids": ["${device.id}"], "title": "Hello", "body": "From pushgate"}'`);
  } catch (error) {
    log("Failed: " + error.message);
  }
}

document.getElementById("form").addEventListener("submit", subscribe);
const fromQuery = new URLSearchParams(location.search).get("key");
if (fromQuery) document.getElementById("key").value = fromQuery;
