/* The leader view's map (cockpit/views/leader.py): children of the chosen area coloured by one
   indicator. Names and figures are inserted as text (textContent), never as HTML. */
(function () {
  "use strict";

  // For the screen and for tests: area id -> layer, value drawn.
  const state = { layers: {}, drawn: {} };

  function colorOf(value, hideout) {
    if (value === null || value === undefined) { return hideout.zero; }
    if (hideout.zeroIsNone && !value) { return hideout.zero; }
    const breaks = hideout.breaks || [];
    let k = 0;
    for (let i = 0; i < breaks.length; i++) { if (value >= breaks[i]) { k = i; } }
    return hideout.colors[Math.min(k, hideout.colors.length - 1)];
  }

  function valueOf(feature, context) {
    const values = (context && context.hideout && context.hideout.values) || {};
    const v = values[feature.id];
    return v === undefined ? null : v;
  }

  function areaStyle(feature, context) {
    const value = valueOf(feature, context);
    state.drawn[feature.id] = value;
    return { fillColor: colorOf(value, context.hideout), fillOpacity: 0.8, color: "#1f2937",
             weight: 1.2 };
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined) { node.textContent = String(text); }
    return node;
  }

  function areaTooltip(feature, layer, context) {
    state.layers[feature.id] = layer;
    layer.bindTooltip(function () {
      const p = feature.properties || {};
      const h = context.hideout || {};
      const box = el("div", "leader-tip");
      box.appendChild(el("div", "tip-name", h.lang === "zh-CN" ? p.name_zh : p.name_en));
      const lines = (h.text || {})[feature.id] || [];
      lines.forEach(function (line) { box.appendChild(el("div", "tip-line", line)); });
      return box;
    }, { sticky: true });
  }

  function areaHover() {
    return { weight: 3, color: "#f9fafb" };
  }

  window.cockpitLeader = { areaStyle, areaTooltip, areaHover, state, colorOf };
})();
