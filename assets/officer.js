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

  // -- the incident list ------------------------------------------------------------------
  // Rows come as data (callbacks/officer.py) and each keeps its element by incident id: a
  // Dash re-render would replace every row whenever the live list changes, and a tap whose
  // press and release straddled it, or the keyboard focus on a row, was lost.

  const ROW_CLICK = "officer-row-click";

  function rowContent(li, row) {
    const head = el("div", "row-head");
    const dot = el("span", "dot");
    dot.style.background = row.colour;
    head.appendChild(dot);
    head.appendChild(el("span", "row-category", row.category_label));
    head.appendChild(el("span", "row-time", row.time));
    head.appendChild(el("span", "row-status st-" + row.status, row.status_label));
    li.replaceChildren(head, el("div", "row-grid", row.grid_name),
                       el("div", "row-text", row.text));
    li.dataset.grid = row.grid;
    li.dataset.category = row.category;
    li.dataset.status = row.status;
  }

  function newRow(row) {
    const li = el("li", "officer-row");
    li.dataset.id = row.id;
    li.setAttribute("role", "button");
    li.tabIndex = 0;
    return li;
  }

  function choose(list, event) {
    const li = event.target.closest && event.target.closest(".officer-row");
    if (!li || !list.contains(li)) { return; }
    window.dash_clientside.set_props(ROW_CLICK, { data: { id: li.dataset.id, at: Date.now() } });
  }

  function wire(list) {
    if (list.dataset.wired) { return; }
    list.dataset.wired = "1";
    list.addEventListener("click", e => choose(list, e));
    list.addEventListener("keydown", e => {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); choose(list, e); }
    });
  }

  function drawRows(rows, selected) {
    const list = document.getElementById("officer-list");
    if (!list || !Array.isArray(rows)) { return window.dash_clientside.no_update; }
    wire(list);
    const had = new Map();
    for (const li of list.children) { had.set(li.dataset.id, li); }
    rows.forEach((row, i) => {
      let li = had.get(row.id);
      if (!li) { li = newRow(row); }
      had.delete(row.id);
      const sig = JSON.stringify(row);
      if (li._sig !== sig) { rowContent(li, row); li._sig = sig; }
      li.classList.toggle("selected", row.id === selected);
      const there = list.children[i];
      if (there !== li) { list.insertBefore(li, there || null); }  // moved, never re-made
    });
    for (const li of had.values()) { li.remove(); }
    return rows.length;
  }

  window.cockpitOfficer = { gridStyle, pointStyle, pointToLayer, bindTip, state };
  window.dash_clientside = window.dash_clientside || {};
  window.dash_clientside.cockpitOfficer = { drawRows };
})();
