/* The officer view's map functions (dash-leaflet calls them by name). Feed text is inserted
   with textContent only: Leaflet treats tooltip strings as HTML, so tooltips get DOM nodes. */
(function () {
  "use strict";

  // What the map shows, for the screen and for tests: incident id -> marker layer.
  const state = { markers: {}, grids: {} };

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function classColor(count, hideout) {
    if (!count) { return hideout.zero; }
    const breaks = hideout.breaks || [];
    let k = 0;
    for (let i = 0; i < breaks.length; i++) { if (count >= breaks[i]) { k = i; } }
    return hideout.colors[Math.min(k, hideout.colors.length - 1)];
  }

  function gridStyle(feature, context) {
    const counts = (context && context.hideout && context.hideout.counts) || {};
    const count = counts[feature.id] || 0;
    state.grids[feature.id] = count;
    return { fillColor: classColor(count, context.hideout), fillOpacity: 0.6, color: "#475569",
             weight: 1.2 };
  }

  function pointStyle(feature, context) {
    const hideout = (context && context.hideout) || {};
    const p = feature.properties || {};
    const selected = hideout.selected && hideout.selected === p.id;
    return {
      radius: selected ? 10 : 7,
      fillColor: (hideout.colors || {})[p.category] || "#6b7280",
      fillOpacity: 0.9,
      color: selected ? "#111827" : "#ffffff",
      weight: selected ? 3 : 1.5,
    };
  }

  function pointToLayer(feature, latlng, context) {
    return L.circleMarker(latlng, pointStyle(feature, context));
  }

  function bindTip(feature, layer, context) {
    const p = feature.properties || {};
    state.markers[p.id] = layer;
    layer.bindTooltip(function () {
      const labels = ((context && context.hideout) || {}).labels || {};
      const box = el("div", "incident-tip");
      box.appendChild(el("div", "tip-name", (labels.categories || {})[p.category] || p.category));
      const status = (labels.statuses || {})[p.status] || p.status;
      box.appendChild(el("div", "tip-parents", [p.time, status, p.grid].filter(Boolean)
        .join(" · ")));
      if (p.address) { box.appendChild(el("div", "tip-address", p.address)); }
      if (p.text) { box.appendChild(el("div", "tip-text", p.text)); }
      return box;
    }, { direction: "top", offset: [0, -6] });
  }

  window.cockpitOfficer = { gridStyle, pointStyle, pointToLayer, bindTip, state };
})();
