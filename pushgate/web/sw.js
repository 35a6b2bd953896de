// Service worker: shows pushgate's Web Push payload as a notification and opens its url on click.
"use strict";

self.addEventListener("push", (event) => {
  let data = {};
  try { data = event.data ? event.data.json() : {}; } catch (e) { data = { body: event.data.text() }; }
  const options = {
    body: data.body, icon: data.icon, image: data.image, badge: data.badge, tag: data.tag,
    actions: data.actions || [], data: { url: data.url, ...(data.data || {}) },
  };
  event.waitUntil(self.registration.showNotification(data.title || "pushgate", options));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = event.notification.data && event.notification.data.url;
  if (url) event.waitUntil(clients.openWindow(url));
});
