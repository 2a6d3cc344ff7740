/* Functions dash-leaflet and Dash call by name. Feed text is always inserted as text
   (textContent), never as HTML: Leaflet treats tooltip strings as HTML. */
(function () {
  "use strict";

  // What the map shows right now, for the screen and for tests: grid id -> layer, count drawn.
  const state = { layers: {}, drawn: {}, gauges: {}, trucks: {}, receivedAt: null,
                  lastSeq: null, fleetSeen: null, fleetAt: null };

  function classColor(count, hideout) {
    if (count === undefined || count === null) { return hideout.zero; }
    if (!count && hideout.format !== "percent") { return hideout.zero; }
    const breaks = hideout.breaks || [];
    let k = 0;
    for (let i = 0; i < breaks.length; i++) { if (count >= breaks[i]) { k = i; } }
    return hideout.colors[Math.min(k, hideout.colors.length - 1)];
  }

  // The colours of the grids (values, breaks, colours, format) as the grid-values store last
  // had them; before its first update, the layer's hideout.
  function colours(context) {
    return state.colours || (context && context.hideout) || {};
  }

  // null: the grid has no value any more (sent so in a Merge rather than as a Delete)
  function countOf(feature, context) {
    const value = (colours(context).values || {})[feature.id];
    return value === null ? undefined : value;
  }

  function gridStyle(feature, context) {
    const count = countOf(feature, context);
    state.drawn[feature.id] = count;
    return {
      fillColor: classColor(count, colours(context)),
      fillOpacity: 0.78,
      color: "#6b7785",
      weight: 0.6,
      // a pixel buffer: a restyle rewrites only the changed grids' pixels (assets/gridcanvas.js)
      renderer: window.cockpitGridCanvas.gridRenderer(context && context.map),
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
      const value = state.drawn[feature.id];
      const pct = colours(context).format === "percent";
      const label = pct ? "%" : " " + ((context.hideout.labels || {}).count || "incidents");
      box.appendChild(el("div", "tip-count", (value === undefined ? "–" : value) + label));
      return box;
    }, { sticky: true });
  }

  // A new grid-values store: restyle, in place, the grids whose value changed (every grid
  // when the classes or colours changed). Leaflet's canvas redraws once per frame for all of
  // them. Grids not on the map yet take their colour from gridStyle when they are added.
  function paintGrids(data) {
    const noUpdate = window.dash_clientside.no_update;
    // while the push stream delivers (assets/push.js), it alone paints the grids
    if (!data || (window.cockpitPush && window.cockpitPush.on)) { return noUpdate; }
    paint(data);
    return noUpdate;
  }

  function paint(data) {
    const old = state.colours;
    const scheme = JSON.stringify([data.breaks, data.colors, data.zero, data.format]);
    const all = !old || scheme !== state.scheme;
    state.colours = data;
    state.scheme = scheme;
    const values = data.values || {};
    let renderer = null;
    for (const id in state.layers) {
      const value = values[id] === null ? undefined : values[id];
      if (!all && state.drawn[id] === value) { continue; }
      state.drawn[id] = value;
      state.layers[id].setStyle({ fillColor: classColor(value, data) });
      renderer = state.layers[id]._renderer;
    }
    // drawn now rather than at the next frame (push.js paints from an animation frame)
    if (renderer && renderer.flush) { renderer.flush(); }
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
    if (sinceAnswer > 10000 || ageMs > (store.stale_ms || 60000)) {
      const lastGood = now - ageMs;
      return [labels.stale_since.replace("{t}", clock(lastGood)), "badge stale"];
    }
    const text = labels.updated_ago.replace("{s}", Math.max(0, Math.round(ageMs / 1000)));
    return [text, "badge fresh"];
  }

  // Flood gauges: colour by the latest level against the gauge's own thresholds.
  function gaugeClass(feature, hideout) {
    const reading = (hideout.levels || {})[feature.id];
    if (!reading) { return "nodata"; }
    const level = reading[0];
    const p = feature.properties;
    if (level >= p.danger) { return "danger"; }
    if (level >= p.warning) { return "warning"; }
    return "normal";
  }

  function gaugePoint(feature, latlng, context) {
    const kind = gaugeClass(feature, context.hideout);
    state.gauges[feature.id] = kind;
    return L.circleMarker(latlng, {
      pane: "gauges", radius: kind === "danger" ? 10 : 8, color: "#111827", weight: 1.5,
      fillColor: context.hideout.colors[kind], fillOpacity: 0.95,
    });
  }

  function gaugeTooltip(feature, layer, context) {
    layer.bindTooltip(function () {
      const p = feature.properties;
      const labels = context.hideout.labels || {};
      const reading = (context.hideout.levels || {})[feature.id];
      const box = el("div", "grid-tip");
      box.appendChild(el("div", "tip-name", labels.lang === "zh-CN" ? p.name_zh : p.name_en));
      const kind = gaugeClass(feature, context.hideout);
      const level = reading ? reading[0].toFixed(2) + " m" : "–";
      box.appendChild(el("div", "tip-count", labels.level + " " + level + " · " + labels[kind]));
      box.appendChild(el("div", "tip-parents",
        labels.warning + " " + p.warning.toFixed(2) + " m · " + labels.danger + " " +
        p.danger.toFixed(2) + " m"));
      return box;
    });
  }

  // Muck trucks: an arrow pointing where the truck heads, coloured loaded / empty / stale.
  function truckMarker(feature, latlng, context) {
    const p = feature.properties;
    state.trucks[feature.id] = [latlng.lat, latlng.lng, p.state];
    const color = context.hideout.colors[p.state];
    const icon = L.divIcon({
      className: "truck-icon",
      html: "",
      iconSize: [18, 18],
    });
    const marker = L.marker(latlng, { icon: icon, keyboard: false });
    marker.on("add", function () {
      const node = marker.getElement();
      if (!node) { return; }
      const arrow = document.createElement("div");
      arrow.className = "truck-arrow";
      arrow.style.borderBottomColor = color;
      arrow.style.transform = "rotate(" + (p.heading === null ? 0 : p.heading) + "deg)";
      node.replaceChildren(arrow);
    });
    return marker;
  }

  function truckTooltip(feature, layer, context) {
    layer.bindTooltip(function () {
      const p = feature.properties;
      const labels = context.hideout.labels || {};
      const box = el("div", "grid-tip");
      box.appendChild(el("div", "tip-name", p.truck));
      const speed = p.speed === null || p.speed === undefined ? "" : " · " + p.speed + " km/h";
      box.appendChild(el("div", "tip-count", (labels[p.state] || p.state) + speed));
      box.appendChild(el("div", "tip-parents", new Date(p.ts).toLocaleTimeString()));
      return box;
    });
  }

  function trailStyle(feature) {
    const loaded = feature.properties && feature.properties.state === "loaded";
    return { color: loaded ? "#b45309" : "#16a34a", weight: 2, opacity: 0.6, dashArray: "4 4" };
  }

  function siteStyle(feature, context) {
    const color = context.hideout.colors[feature.properties.kind] || "#6b7280";
    const forbidden = feature.properties.kind === "forbidden";
    return { color: color, weight: 2, fillColor: color, fillOpacity: forbidden ? 0.15 : 0.3,
             dashArray: forbidden ? "6 4" : null };
  }

  function siteTooltip(feature, layer) {
    layer.bindTooltip(function () {
      const p = feature.properties;
      const zh = document.documentElement.lang === "zh-CN" ||
        (document.querySelector(".cockpit") || {}).lang === "zh-CN";
      return el("div", "grid-tip", zh ? p.name_zh : p.name_en);
    });
  }

  function ageText(labels, serverMs, lastMs, receivedAt, staleAfterMs) {
    const now = Date.now();
    if (!serverMs || !lastMs) { return [labels.no_data, "stale"]; }
    const sinceAnswer = now - receivedAt;
    const ageMs = serverMs - lastMs + sinceAnswer;
    if (sinceAnswer > 10000 || ageMs > staleAfterMs) {
      return [labels.stale_since.replace("{t}", clock(now - ageMs)), "stale"];
    }
    return [labels.updated_ago.replace("{s}", Math.max(0, Math.round(ageMs / 1000))), "fresh"];
  }

  function fleetAge(_tick, store, labels) {
    if (store && store.server_ms !== state.fleetSeen) {
      state.fleetSeen = store.server_ms;
      state.fleetAt = Date.now();
    }
    let s = store || {};
    const pushed = window.cockpitPush;
    // while pushed, the fleet callback runs only when a feed applies something: the feeds'
    // last apply comes with the stream's view events, the server's clock with every event
    if (pushed && pushed.on && pushed.fleet && pushed.clock) {
      s = Object.assign({}, pushed.fleet, { server_ms: pushed.clock.server_ms });
      state.fleetAt = pushed.clock.receivedAt;
      state.fleetSeen = null;
    }
    const staleMs = s.stale_ms || {};  // per feed, from the server's settings
    const g = ageText(labels, s.server_ms, s.gauges, state.fleetAt, staleMs.gauges || 180000);
    const tr = ageText(labels, s.server_ms, s.trucks, state.fleetAt, staleMs.trucks || 120000);
    return [g[0], "badge " + g[1], tr[0], "badge " + tr[1]];
  }

  window.cockpitMap = {
    gridStyle, gridTooltip, gridHover, boundaryStyle, state, classColor, paint,
    gaugePoint, gaugeTooltip, truckMarker, truckTooltip, trailStyle, siteStyle, siteTooltip,
  };
  window.dash_clientside = Object.assign({}, window.dash_clientside, {
    cockpit: { dataAge, fleetAge, paintGrids },
  });
})();
