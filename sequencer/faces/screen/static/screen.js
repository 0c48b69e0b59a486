// viaform operator's screen: live updates from the daemon's /events stream (no polling).
// On an event, the page's live parts (#banner, #live) are fetched again as a fragment
// (header X-Viaform-Fragment) and swapped in: at most one fetch in flight, at most one
// every 2 s (a lot's events come in bursts; the screen is for people, not a log), except
// that an alarm is fetched at once. Each fetch says the id of the last event heard
// (X-Viaform-Seen), so the pages woken by one burst share one rendering. The stream
// reconnects by itself after a daemon restart; the page then refreshes once.
(function () {
  "use strict";
  var kinds = (document.body.dataset.events || "").split(",").filter(Boolean);
  var link = document.getElementById("link");
  var source = null, timer = null, busy = false, again = false, down = false;
  var retryMs = 1000, last = 0, seen = "";
  var SETTLE_MS = 150, EVERY_MS = 2000;

  function show(text, ok) {
    if (!link) return;
    link.textContent = text;
    link.className = ok ? "link" : "link down";
  }

  // Put the fresh copy's changes into the page, replacing only the elements that differ
  // (a card whose step clock moved, the slot that changed colour), so the browser lays
  // out little, and a focused control outside them keeps its focus.
  function patch(cur, fresh, depth) {
    var a = Array.prototype.slice.call(cur.children);
    var b = Array.prototype.slice.call(fresh.children);
    if (depth > 3 || a.length !== b.length || a.length === 0) {
      cur.replaceWith(fresh);
      return;
    }
    for (var i = 0; i < b.length; i++) {
      if (a[i].isEqualNode(b[i])) continue;
      if (a[i].tagName === b[i].tagName && a[i].id === b[i].id &&
          a[i].attributes.length === b[i].attributes.length &&
          a[i].className === b[i].className && a[i].children.length) {
        patch(a[i], b[i], depth + 1);
      } else {
        a[i].replaceWith(b[i]);
      }
    }
  }

  function swap(html) {
    var tpl = document.createElement("template");
    tpl.innerHTML = html;
    var focused = document.activeElement && document.activeElement.id;
    ["e30", "banner", "live"].forEach(function (id) {
      var fresh = tpl.content.getElementById(id), cur = document.getElementById(id);
      if (fresh && cur && !cur.isEqualNode(fresh)) patch(cur, fresh, 0);
    });
    if (focused && document.activeElement && document.activeElement.id !== focused) {
      var again = document.getElementById(focused);
      if (again) again.focus();
    }
  }

  function refresh() {
    timer = null;
    if (busy) { again = true; return; }
    busy = true;
    last = Date.now();
    var headers = {"X-Viaform-Fragment": "1"};
    if (seen) headers["X-Viaform-Seen"] = seen;  // a copy made since then will do
    fetch(location.pathname + location.search, {
      headers: headers, credentials: "same-origin", cache: "no-store"
    }).then(function (r) {
      if (r.status === 401) { location.reload(); return null; }
      if (!r.ok && r.status !== 404) throw new Error("fragment: HTTP " + r.status);
      return r.text();
    }).then(function (html) {
      if (html) swap(html);
    }).catch(function () {
      // not refreshed: while the stream is up (a busy daemon, a dropped connection) try
      // again at the next turn; if the daemon is away, the stream's reconnect brings us
      // back (its hello refreshes)
      if (source && source.readyState === EventSource.OPEN) again = true;
      else down = true;
    }).then(function () {
      busy = false;
      if (again) { again = false; schedule(); }
    });
  }

  // an alarm goes to the banner at once; other events wait for the once-a-second turn
  function schedule(event) {
    var urgent = event && (event.type === "alarm" || event.type === "alarm_ack");
    var wait = urgent ? SETTLE_MS : Math.max(SETTLE_MS, last + EVERY_MS - Date.now());
    if (timer && urgent) { clearTimeout(timer); timer = null; }
    if (!timer) timer = setTimeout(refresh, wait);
  }

  // every event, also as a DOM event "viaform-event" on the document (its detail is the
  // event's data), for whatever else on the page wants it (bench_screen times delivery)
  function onEvent(event) {
    if (event.lastEventId) seen = event.lastEventId;
    schedule(event);
    try {
      document.dispatchEvent(new CustomEvent("viaform-event",
        {detail: {kind: event.type, data: JSON.parse(event.data)}}));
    } catch (e) { /* not JSON: nothing to tell */ }
  }

  function connect() {
    var url = "/events?kinds=" + encodeURIComponent(kinds.join(","));
    source = new EventSource(url, {withCredentials: true});
    source.addEventListener("hello", function () {
      show("live", true);
      seen = "";  // a restarted daemon counts its events from 1 again
      retryMs = 1000;
      if (down) { down = false; schedule(); }
    });
    kinds.forEach(function (k) { source.addEventListener(k, onEvent); });
    source.addEventListener("overflow", schedule);
    source.onerror = function () {
      show("reconnecting…", false);
      down = true;
      if (source.readyState === EventSource.CLOSED) {  // refused (e.g. a new session needed)
        source.close();
        schedule();  // fetching the page renews an open daemon's session, or goes to login
        setTimeout(connect, retryMs);
        retryMs = Math.min(retryMs * 2, 10000);
      }
    };
  }

  window.addEventListener("pagehide", function () { if (source) source.close(); });
  connect();
})();
