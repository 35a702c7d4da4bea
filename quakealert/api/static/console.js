// The duty console's only script: approval countdowns, and a front page that re-reads itself
// without losing the officer's place. The pages work without it (plain forms and links).
(function () {
  "use strict";
  var zh = document.documentElement.lang.indexOf("zh") === 0;

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function duration(ms) {
    var s = Math.max(0, Math.round(ms / 1000));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    if (h >= 48) { return zh ? Math.floor(h / 24) + "天" : Math.floor(h / 24) + " d"; }
    if (h > 0) { return zh ? h + "小时" + pad(m) + "分" : h + " h " + pad(m) + " min"; }
    return zh ? m + "分" + pad(sec) + "秒" : m + " min " + pad(sec) + " s";
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-deadline]").forEach(function (el) {
      var left = Date.parse(el.getAttribute("data-deadline")) - now;
      el.textContent = left > 0 ? el.getAttribute("data-left").replace("{t}", duration(left))
                                : el.getAttribute("data-due");
      el.classList.toggle("overdue", left <= 0);
      el.classList.toggle("soon", left > 0 && left < 10 * 60 * 1000);
    });
  }

  // The officer's place: a section being typed in, focused, or with an open text stays as it is.
  function busy(section) {
    if (section.contains(document.activeElement) && document.activeElement !== document.body) {
      return true;
    }
    var fields = section.querySelectorAll("input[type=text], textarea");
    for (var i = 0; i < fields.length; i++) { if (fields[i].value) { return true; } }
    return section.querySelector("details[open]") !== null;
  }

  function refresh(live) {
    return fetch(location.pathname + location.search, {credentials: "same-origin",
                                                headers: {"Accept": "text/html"}})
      .then(function (resp) {
        if (!resp.ok || resp.redirected) { throw new Error("status " + resp.status); }
        return resp.text();
      })
      .then(function (text) {
        var fresh = new DOMParser().parseFromString(text, "text/html");
        document.querySelectorAll("section[data-live][id]").forEach(function (old) {
          var next = fresh.getElementById(old.id);
          if (next && !busy(old)) { old.replaceWith(document.importNode(next, true)); }
        });
        var banner = document.getElementById("mode-banner");
        var freshBanner = fresh.getElementById("mode-banner");
        if (banner && freshBanner) { banner.textContent = freshBanner.textContent; }
        live.removeAttribute("data-failed");
        live.textContent = "";
        tick();
      })
      .catch(function () {
        live.setAttribute("data-failed", "1");
        live.textContent = live.getAttribute("data-stale");
      });
  }

  document.addEventListener("DOMContentLoaded", function () {
    tick();
    setInterval(tick, 1000);
    // an action's outcome is said once; a reload must not say it again
    if (/[?&]done=/.test(location.search)) {
      var q = location.search.replace(/([?&])(done|n|state)=[^&]*/g, "$1")
        .replace(/[?&]+$/, "").replace(/\?&+/, "?").replace(/&&+/g, "&");
      history.replaceState(null, "", location.pathname + q + location.hash);
    }
    var live = document.getElementById("live");
    if (live) {
      var every = parseInt(live.getAttribute("data-refresh-s"), 10) || 30;
      setInterval(function () { refresh(live); }, every * 1000);
      // one refresh now, for people (and the browser tests) who do not want to wait
      window.quakealertRefresh = function () { return refresh(live); };
    }
  });
})();
