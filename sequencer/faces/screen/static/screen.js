// viaform operator's screen: live updates from the daemon's /events stream (no polling).
// On an event, the page's live parts (#banner, #live) are fetched again as a fragment
// (header X-Viaform-Fragment) and swapped in, at most one fetch in flight. The stream
// reconnects by itself after a daemon restart; the page then refreshes once.
(function () {
  "use strict";
  var kinds = (document.body.dataset.events || "").split(",").filter(Boolean);
  var link = document.getElementById("link");
  var source = null, timer = null, busy = false, again = false, down = false;
  var retryMs = 1000;

  function show(text, ok) {
    if (!link) return;
    link.textContent = text;
    link.className = ok ? "link" : "link down";
  }

  function swap(html) {
    var tpl = document.createElement("template");
    tpl.innerHTML = html;
    ["banner", "live"].forEach(function (id) {
      var fresh = tpl.content.getElementById(id), cur = document.getElementById(id);
      if (!fresh || !cur || fresh.innerHTML === cur.innerHTML) return;
      var focused = document.activeElement && document.activeElement.id;
      cur.replaceWith(fresh);
      if (focused) {
        var again = document.getElementById(focused);
        if (again) again.focus();
      }
    });
  }

  function refresh() {
    timer = null;
    if (busy) { again = true; return; }
    busy = true;
    fetch(location.pathname + location.search, {
      headers: {"X-Viaform-Fragment": "1"}, credentials: "same-origin", cache: "no-store"
    }).then(function (r) {
      if (r.status === 401) { location.reload(); return null; }
      return r.ok || r.status === 404 ? r.text() : null;
    }).then(function (html) {
      if (html) swap(html);
    }).catch(function () {
      down = true;  // the daemon is away; the stream's reconnect brings us back
    }).then(function () {
      busy = false;
      if (again) { again = false; schedule(); }
    });
  }

  function schedule() {
    if (!timer) timer = setTimeout(refresh, 150);
  }

  function connect() {
    var url = "/events?kinds=" + encodeURIComponent(kinds.join(","));
    source = new EventSource(url, {withCredentials: true});
    source.addEventListener("hello", function () {
      show("live", true);
      retryMs = 1000;
      if (down) { down = false; schedule(); }
    });
    kinds.forEach(function (k) { source.addEventListener(k, schedule); });
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
