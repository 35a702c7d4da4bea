/* quakealert Web Push service worker, served as /sw.js with Service-Worker-Allowed: /.
 *
 * Each push carries the JSON built by quakealert/channels/webpush.py build_payload:
 * {title, body, lang, messages: [{lang, title, body}], notice_id, sequence_id, tag, kind, msg_type,
 *  exercise, url, created_at}. `messages` holds one phone-sized title and body per language the
 * resident chose, in their order: ONE notification shows them stacked (first language's title,
 * then each body, the later ones under their own title). The tag is the sequence id, so a newer
 * notice about the same earthquake sequence replaces the older one instead of piling up; the full
 * notice is one tap away at `url`.
 */
"use strict";

var FALLBACK_TITLE = "地震通知 / Earthquake notice";

self.addEventListener("install", function () {
  self.skipWaiting();
});

self.addEventListener("activate", function (event) {
  event.waitUntil(self.clients.claim());
});

function readPayload(event) {
  if (!event.data) { return {}; }
  try {
    var p = event.data.json();
    return p && typeof p === "object" ? p : {};
  } catch (e) {
    return {body: event.data.text()};
  }
}

function safeUrl(url) {
  if (typeof url !== "string" || !url) { return null; }
  try {
    var u = new URL(url, self.location.origin);
    return (u.protocol === "https:" || u.protocol === "http:") ? u.href : null;
  } catch (e) {
    return null;
  }
}

self.addEventListener("push", function (event) {
  var p = readPayload(event);
  var msgs = (Array.isArray(p.messages) ? p.messages : []).filter(function (m) {
    return m && typeof m.body === "string";
  });
  if (!msgs.length) { msgs = [{lang: p.lang, title: p.title, body: p.body}]; }
  var first = msgs[0];
  var body = typeof first.body === "string" ? first.body : "";
  msgs.slice(1).forEach(function (m) {
    body += "\n\n" + (typeof m.title === "string" && m.title ? m.title + "\n" : "") + m.body;
  });
  p.title = first.title;
  p.lang = first.lang;
  var tag = String(p.sequence_id || p.tag || "quakealert");
  var options = {
    body: body,
    tag: tag,
    renotify: true,
    data: {url: safeUrl(p.url) || self.location.origin + "/subscribe"}
  };
  if (typeof p.lang === "string") { options.lang = p.lang === "zh" ? "zh-Hans" : p.lang; }
  var title = typeof p.title === "string" && p.title ? p.title : FALLBACK_TITLE;
  event.waitUntil(self.registration.showNotification(title, options));
});

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  var url = (event.notification.data && event.notification.data.url) ||
    self.location.origin + "/subscribe";
  event.waitUntil(self.clients.matchAll({type: "window", includeUncontrolled: true})
    .then(function (windows) {
      for (var i = 0; i < windows.length; i++) {
        if (windows[i].url === url && "focus" in windows[i]) { return windows[i].focus(); }
      }
      return self.clients.openWindow ? self.clients.openWindow(url) : null;
    }));
});
