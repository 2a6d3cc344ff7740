/* Alerts on screen: map markers coloured by severity (colours from the CSS custom properties
   --sev-* in alerts.css, the one definition), their tooltips, the countdowns and ages of the
   alert lists, and zooming a map to an alert clicked in a list. Feed text (titles) is only ever
   inserted as text (textContent), never as HTML. */
(function () {
  "use strict";

  // What is on screen, for people debugging and for tests: alert id -> marker, colour drawn.
  const state = { markers: {}, colors: {}, skew: {}, sent: {}, map: null, zoomed: null };
  // A warning triangle, bigger for worse alerts: unlike the round incident and gauge points.
  const SIZE = { extreme: 30, severe: 27, moderate: 23, minor: 20, info: 18 };
  const RANK = { extreme: 4, severe: 3, moderate: 2, minor: 1, info: 0 };

  function severityColor(severity) {
    const css = getComputedStyle(document.documentElement);
    return css.getPropertyValue("--sev-" + severity).trim() ||
      css.getPropertyValue("--sev-info").trim();
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function pad(n) { return String(n).padStart(2, "0"); }

  // 75 s -> "1:15", 3725 s -> "1:02:05"
  function duration(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    return h ? h + ":" + pad(m) + ":" + pad(s % 60) : m + ":" + pad(s % 60);
  }

  function marker(feature, latlng, context) {
    const p = feature.properties || {};
    const color = severityColor(p.severity);
    state.colors[feature.id] = color;
    // server clock minus browser clock, so countdowns run on the server's time; taken when
    // the feature arrives (a delta re-creates the unchanged markers with their old sent_ms)
    if (state.sent[feature.id] !== p.sent_ms || !(feature.id in state.skew)) {
      state.sent[feature.id] = p.sent_ms;
      state.skew[feature.id] = (p.sent_ms || Date.now()) - Date.now();
    }
    const size = SIZE[p.severity] || 20;
    const icon = L.divIcon({ className: "alert-icon", html: "", iconSize: [size, size],
                             tooltipAnchor: [size / 2, -size / 4] });
    const layer = L.marker(latlng, {
      icon: icon, pane: (context.hideout || {}).pane || "alerts", keyboard: false,
      zIndexOffset: (RANK[p.severity] || 0) * 100, // the worst alert on top where they crowd
    });
    layer.on("add", function () {
      state.map = layer._map;
      const node = layer.getElement();
      if (!node) { return; }
      const sign = el("div", "alert-sign" + (p.status === "new" ? " is-new" : ""), "!");
      sign.style.background = color;
      if (p.severity === "moderate") { sign.style.color = "#111827"; }
      node.replaceChildren(sign);
    });
    state.markers[feature.id] = layer;
    return layer;
  }

  function escalationText(p, labels, nowMs) {
    const levels = labels.level || {};
    const parts = [];
    if (p.level && p.level !== "grid") {
      parts.push((labels.escalated_to || "").replace("{level}", levels[p.level] || p.level));
    }
    if (p.next_ms && p.next_level) {
      parts.push((labels.countdown || "")
        .replace("{level}", levels[p.next_level] || p.next_level)
        .replace("{t}", duration(p.next_ms - nowMs)));
    }
    return parts.join(" · ");
  }

  function tooltip(feature, layer, context) {
    layer.bindTooltip(function () {
      const p = feature.properties || {};
      const labels = (context.hideout || {}).labels || {};
      const now = Date.now() + (state.skew[feature.id] || 0);
      const box = el("div", "grid-tip alert-tip");
      box.appendChild(el("div", "tip-name", p.title));
      const line = el("div", "tip-count");
      line.appendChild(el("span", "tip-sev sev-bg-" + p.severity,
                          (labels.severity || {})[p.severity] || p.severity));
      line.appendChild(document.createTextNode((labels.status || {})[p.status] || p.status));
      box.appendChild(line);
      const esc = escalationText(p, labels, now);
      if (esc) { box.appendChild(el("div", "tip-parents tip-escalation", esc)); }
      box.appendChild(el("div", "tip-parents",
        (labels.age || "{t}").replace("{t}", duration(now - p.raised_ms))));
      return box;
    });
  }

  // The alert lists carry times as data attributes; this fills the countdowns and ages every
  // second (React leaves these spans' text alone: the server renders them empty).
  function tickLists() {
    document.querySelectorAll(".alist[data-sent-ms]").forEach(function (list) {
      if (list.dataset.seen !== list.dataset.sentMs) {
        list.dataset.seen = list.dataset.sentMs;
        list.dataset.skew = String(Number(list.dataset.sentMs) - Date.now());
      }
      const now = Date.now() + Number(list.dataset.skew || 0);
      list.querySelectorAll("[data-at-ms]").forEach(function (span) {
        const at = Number(span.dataset.atMs);
        const ms = span.dataset.kind === "age" ? now - at : at - now;
        span.textContent = (span.dataset.template || "{t}").replace("{t}", duration(ms));
      });
    });
  }
  setInterval(tickLists, 1000);

  // A click on an alert in a list: fly the map to the alert's bounds (sent with the list).
  function zoomTo(_clicks, store) {
    const noUpdate = window.dash_clientside.no_update;
    const ctx = window.dash_clientside.callback_context;
    const fired = (ctx.triggered || []).filter(function (t) { return t.value; });
    if (!fired.length || !store || !store.bounds) { return noUpdate; }
    const propId = fired[0].prop_id;
    let id;
    try { id = JSON.parse(propId.slice(0, propId.lastIndexOf("."))); } catch (e) { return noUpdate; }
    const bounds = store.bounds[id.alert];
    if (!bounds) { return noUpdate; }
    state.zoomed = id.alert;
    return { bounds: bounds, transition: "flyToBounds" };
  }

  window.cockpitAlerts = { marker, tooltip, state, severityColor, duration, tickLists };
  window.dash_clientside = Object.assign({}, window.dash_clientside, {
    cockpitAlerts: { zoomTo: zoomTo },
  });
})();
