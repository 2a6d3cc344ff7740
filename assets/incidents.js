/* The incident point layer (layers/incidents.py): markers coloured by category (all shown) or
   by status (one category chosen), resolved and closed ones faded; clusters with their count
   in the colour most of their incidents have; tooltips. Feed values (category, status, time, grid name) are inserted with
   textContent only, never as HTML: Leaflet treats tooltip strings as HTML. */
(function () {
  "use strict";

  // What the layer shows, for the screen and for tests: incident id -> marker, cluster id ->
  // marker, and the Leaflet map the layer is on.
  const state = { points: {}, clusters: {}, map: null };

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  // The colour key of a point: its category or its status, as the server chose (hideout.by).
  function keyOf(p, hideout) {
    return (hideout && hideout.by) === "status" ? p.s : p.c;
  }

  function colorOf(key, hideout) {
    const colors = ((hideout && hideout.colors) || {})[(hideout && hideout.by) || "category"];
    return (colors || {})[key] || "#64748b";
  }

  function point(feature, latlng, context) {
    const p = feature.properties || {};
    const hideout = (context && context.hideout) || {};
    if (context && context.map) { state.map = context.map; }
    const finished = (hideout.finished || []).includes(p.s);
    const marker = L.circleMarker(latlng, {
      pane: hideout.pane || "overlayPane", radius: finished ? 5 : 6, color: "#ffffff",
      weight: finished ? 1 : 1.5, fillColor: colorOf(keyOf(p, hideout), hideout),
      fillOpacity: finished ? 0.4 : 0.95, opacity: finished ? 0.6 : 1,
    });
    state.points[feature.id] = marker;
    return marker;
  }

  // A cluster: a disc sized by its count, in the colour most of its incidents have (from a
  // sample of its leaves, so a cluster of thousands costs no more than one of 200).
  function cluster(feature, latlng, index, context) {
    const p = feature.properties || {};
    const hideout = (context && context.hideout) || {};
    if (context && context.map) { state.map = context.map; }
    const tally = {};
    let top = null;
    for (const leaf of index.getLeaves(p.cluster_id, 200)) {
      const k = keyOf(leaf.properties || {}, hideout);
      tally[k] = (tally[k] || 0) + 1;
      if (top === null || tally[k] > tally[top]) { top = k; }
    }
    const count = p.point_count || 0;
    const size = Math.round(26 + 8 * Math.log10(Math.max(count, 1)));
    const icon = L.divIcon({ className: "incident-cluster", html: "", iconSize: [size, size] });
    const marker = L.marker(latlng, { icon: icon, keyboard: false });
    marker.on("add", function () {
      const node = marker.getElement();
      if (!node) { return; }
      const disc = el("div", "incident-cluster-disc", p.point_count_abbreviated || count);
      disc.style.background = colorOf(top, hideout);
      node.replaceChildren(disc);
    });
    state.clusters[p.cluster_id] = marker;
    return marker;
  }

  function tooltip(feature, layer, context) {
    const p = feature.properties || {};
    layer.bindTooltip(function () {
      const labels = ((context && context.hideout) || {}).labels || {};
      const box = el("div", "grid-tip incident-tip");
      if (p.cluster) {
        const n = p.point_count || 0;
        box.appendChild(el("div", "tip-count", (labels.cluster || "{n}").replace("{n}", n)));
        return box;
      }
      box.appendChild(el("div", "tip-name", (labels.categories || {})[p.c] || p.c));
      box.appendChild(el("div", "tip-count", (labels.statuses || {})[p.s] || p.s));
      box.appendChild(el("div", "tip-parents", [p.t, p.g].filter(Boolean).join(" · ")));
      return box;
    }, { direction: "top", offset: [0, -6] });
  }

  window.cockpitIncidents = { point, cluster, tooltip, state };
})();
