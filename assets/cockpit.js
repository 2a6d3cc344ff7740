/* Functions dash-leaflet and Dash call by name. Feed text is always inserted as text
   (textContent), never as HTML: Leaflet treats tooltip strings as HTML. */
(function () {
  "use strict";

  // What the map shows right now, for the screen and for tests: grid id -> layer, count drawn.
  const state = { layers: {}, drawn: {}, receivedAt: null, lastSeq: null };

  function classColor(count, hideout) {
    if (!count) { return hideout.zero; }
    const breaks = hideout.breaks || [];
    let k = 0;
    for (let i = 0; i < breaks.length; i++) { if (count >= breaks[i]) { k = i; } }
    return hideout.colors[Math.min(k, hideout.colors.length - 1)];
  }

  function countOf(feature, context) {
    const counts = (context && context.hideout && context.hideout.counts) || {};
    return counts[feature.id] || 0;
  }

  function gridStyle(feature, context) {
    const count = countOf(feature, context);
    state.drawn[feature.id] = count;
    return {
      fillColor: classColor(count, context.hideout),
      fillOpacity: 0.78,
      color: "#6b7785",
      weight: 0.6,
    };
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined) { node.textContent = String(text); }
    return node;
  }

  function gridTooltip(feature, layer, context) {
    state.layers[feature.id] = layer;
    layer.bindTooltip(function () {
      const p = feature.properties || {};
      const zh = (context.hideout.labels || {}).lang === "zh-CN";
      const box = el("div", "grid-tip");
      box.appendChild(el("div", "tip-name", zh ? p.name_zh : p.name_en));
      const parents = zh
        ? [p.community_zh, p.street_zh, p.district_zh]
        : [p.community_en, p.street_en, p.district_en];
      box.appendChild(el("div", "tip-parents", parents.filter(Boolean).join(" · ")));
      const count = state.drawn[feature.id] || 0;
      const label = (context.hideout.labels || {}).count || "incidents";
      box.appendChild(el("div", "tip-count", count + " " + label));
      return box;
    }, { sticky: true });
  }

  function gridHover() {
    return { weight: 2.5, color: "#1f2d3d" };
  }

  function boundaryStyle(feature) {
    const district = feature.properties && feature.properties.level === "district";
    return { fill: false, color: district ? "#111827" : "#374151", weight: district ? 3 : 1.6,
             opacity: 0.9 };
  }

  function pad(n) { return String(n).padStart(2, "0"); }
  function clock(ms) {
    const d = new Date(ms);
    return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }

  // Data-age badge: "updated 3 s ago", or "stale since 10:42:05" when the feed or the server
  // stops answering. Ages are measured on the server clock, so browser clock skew is harmless.
  function dataAge(_tick, store, labels) {
    const now = Date.now();
    if (!store || !store.server_ms) { return [labels.no_data, "badge stale"]; }
    if (store.server_ms !== state.lastSeq) { state.lastSeq = store.server_ms; state.receivedAt = now; }
    if (!store.last_apply_ms) { return [labels.no_data, "badge stale"]; }
    const sinceAnswer = now - state.receivedAt;
    const ageMs = store.server_ms - store.last_apply_ms + sinceAnswer;
    if (sinceAnswer > 10000 || ageMs > 60000) {
      const lastGood = now - ageMs;
      return [labels.stale_since.replace("{t}", clock(lastGood)), "badge stale"];
    }
    const text = labels.updated_ago.replace("{s}", Math.max(0, Math.round(ageMs / 1000)));
    return [text, "badge fresh"];
  }

  window.cockpitMap = { gridStyle, gridTooltip, gridHover, boundaryStyle, state, classColor };
  window.dash_clientside = Object.assign({}, window.dash_clientside, {
    cockpit: { dataAge },
  });
})();
