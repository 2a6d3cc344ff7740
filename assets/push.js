/* The grid values pushed by the server (cockpit/push.py) as server-sent events: the first event
   holds every value of the page's scope, the next ones what changed, each with the KPIs and the
   worker's last apply time. While the stream delivers, the grid layer's poll is held back (the
   grid-push-on store) and the values, KPIs, data age and legend breaks are set from here; when
   it fails, polling takes over within a tick. Its "view" events carry versions of the view's
   other live parts (open alerts of the scope, gauge and truck feeds, the slow parts: heat,
   incident points, resolution rate): each part's callback runs when its version changes,
   instead of every tick. Only numbers and digests travel on it, never text. */
(function () {
  "use strict";

  const ON_STORE = "grid-push-on";
  const BREAKS_STORE = "grid-breaks";  // a server callback draws the legend (in the page's language)
  const LIVE_STORE = "live-store";  // the data-age badge's clock
  const KPIS = ["kpi-incidents", "kpi-open"];
  const VIEW_TICKS = { alerts: "tick-alerts", fleet: "tick-fleet", slow: "tick-slow" };
  const PAINT_GAP = 2;  // wait this many times the last paint's cost before the next
  const LOST_AFTER_MS = 2000;  // a reconnect (every few minutes) does not flip to polling
  const RETRY_CLOSED_MS = 30000;  // refused (503: too many streams) or signed out

  // For the screen and for tests: is the stream delivering, how many events, the last sequence.
  const push = { on: false, events: 0, seq: null, receivedAt: null, source: null, key: null,
                 mapId: null, data: null, painting: false, lostTimer: null, breaks: null,
                 kpi: [null, null], paintMs: null, nextPaintAt: 0, view: {}, views: 0,
                 fleet: null, clock: null };

  function setOn(on) {
    if (push.on === on) { return; }
    push.on = on;
    window.dash_clientside.set_props(ON_STORE, { data: on });
  }

  function close() {
    if (push.source) { push.source.close(); }
    push.source = null;
    push.key = null;
    push.data = null;
    push.breaks = null;
    push.kpi = [null, null];
    push.view = {};
    push.fleet = null;
    clearTimeout(push.lostTimer);
    setOn(false);
  }

  // Events that arrive before the next paint are painted together. A paint costs the page's
  // main thread its restyle and the canvas redraw of the next frame (at 4K in software raster
  // about a tenth of a second): the next one waits twice that, so grid paints take at most a
  // third of the main thread and the rest of the screen keeps up.
  function paintSoon() {
    if (push.painting) { return; }
    push.painting = true;
    setTimeout(function () {
      requestAnimationFrame(function () {
        push.painting = false;
        if (!(push.data && push.on)) { return; }
        const started = performance.now();
        window.cockpitMap.paint(push.data);
        requestAnimationFrame(function () {
          setTimeout(function () {
            push.paintMs = performance.now() - started;
            push.nextPaintAt = Date.now() + PAINT_GAP * push.paintMs;
          }, 0);
        });
      });
    }, Math.max(0, push.nextPaintAt - Date.now()));
  }

  function onGrids(event) {
    if (!document.getElementById(push.mapId)) { close(); return; }  // the map left the page
    const msg = JSON.parse(event.data);
    if (msg.full || !push.data) {
      push.data = { values: msg.values || {}, breaks: msg.breaks, colors: msg.colors,
                    zero: msg.zero, format: msg.format };
    } else {
      Object.assign(push.data.values, msg.values);  // null: that grid has no value any more
      push.data.breaks = msg.breaks;
      push.data.colors = msg.colors;
    }
    push.seq = msg.seq;
    push.events += 1;
    push.receivedAt = Date.now();
    clearTimeout(push.lostTimer);
    setOn(true);
    paintSoon();
    const set = window.dash_clientside.set_props;
    const breaks = JSON.stringify(msg.breaks);
    if (breaks !== push.breaks) {
      push.breaks = breaks;
      set(BREAKS_STORE, { data: msg.breaks });
    }
    (msg.kpi || []).forEach(function (n, k) {
      if (n === push.kpi[k]) { return; }
      push.kpi[k] = n;
      set(KPIS[k], { children: Number(n).toLocaleString("en-US") });
    });
    onAge(msg);
  }

  // The badge's clock: the server's time and the worker's last apply, on every event.
  function onAge(event) {
    const msg = event.data === undefined ? event : JSON.parse(event.data);
    push.clock = { server_ms: msg.server_ms, receivedAt: Date.now() };
    window.dash_clientside.set_props(LIVE_STORE, { data: {
      server_ms: msg.server_ms, last_apply_ms: msg.last_apply_ms, stale_ms: msg.stale_ms,
      pushed: true } });
  }

  // The view's other parts: a callback runs when its part's version changes. The fleet badge's
  // clock comes with it, since the fleet callback no longer runs every tick.
  function onView(event) {
    const msg = JSON.parse(event.data);
    push.views += 1;
    push.fleet = msg.fleet;
    push.clock = { server_ms: msg.fleet.server_ms, receivedAt: Date.now() };
    const set = window.dash_clientside.set_props;
    Object.keys(VIEW_TICKS).forEach(function (part) {
      const version = (msg.v || {})[part];
      if (version === undefined || version === push.view[part]) { return; }
      push.view[part] = version;
      set(VIEW_TICKS[part], { data: version });
    });
  }

  function open(key) {
    const source = new EventSource(key);
    source.addEventListener("grids", onGrids);
    source.addEventListener("view", onView);
    source.addEventListener("age", function (event) { if (push.on) { onAge(event); } });
    source.onerror = function () {
      clearTimeout(push.lostTimer);
      push.lostTimer = setTimeout(function () {
        if (push.source === source) { push.view = {}; setOn(false); }  // every part re-reads
      }, LOST_AFTER_MS);
      if (source.readyState === EventSource.CLOSED) {
        setTimeout(function () {
          if (push.source === source && document.getElementById(push.mapId)) {
            push.source = open(key);
          }
        }, RETRY_CLOSED_MS);
      }
    };
    return source;
  }

  // Clientside callback: (re)open the stream for the chosen metric and category.
  function gridPush(metric, category, config) {
    const noUpdate = window.dash_clientside.no_update;
    const url = config && config.url;
    if (!url || typeof EventSource === "undefined") { close(); return noUpdate; }
    const key = url + "?" + new URLSearchParams({ metric: metric || "", category: category || "" });
    if (push.source && push.key === key && push.source.readyState !== EventSource.CLOSED) {
      return noUpdate;
    }
    close();
    push.key = key;
    push.mapId = config.map;
    push.source = open(key);
    return noUpdate;
  }

  // Clientside callback: the grid layer's poll tick, held back while the stream delivers.
  function pollTick(n, on) {
    return on ? window.dash_clientside.no_update : n;
  }

  // Clientside callback: the other live parts' ticks, passed on while no stream delivers.
  function viewTicks(n, on) {
    const noUpdate = window.dash_clientside.no_update;
    return on ? [noUpdate, noUpdate, noUpdate] : [n, n, n];
  }

  // A stream whose map left the page (another view) and that hears nothing closes here too.
  setInterval(function () {
    if (push.source && !document.getElementById(push.mapId)) { close(); }
  }, 5000);

  window.cockpitPush = push;
  window.dash_clientside = window.dash_clientside || {};
  window.dash_clientside.cockpitPush = { gridPush, pollTick, viewTicks };
})();
