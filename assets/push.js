/* The grid values pushed by the server (cockpit/push.py) as server-sent events: the first event
   holds every value of the page's scope, the next ones what changed. While the stream delivers,
   the page tells the polling callback so (the grid-push-on store) and paints from here; when it
   fails, polling takes over within a tick. Only numbers travel on it, never text. */
(function () {
  "use strict";

  const ON_STORE = "grid-push-on";
  const LOST_AFTER_MS = 2000;  // a reconnect (every few minutes) does not flip to polling
  const RETRY_CLOSED_MS = 30000;  // refused (503: too many streams) or signed out

  // For the screen and for tests: is the stream delivering, how many events, the last sequence.
  const push = { on: false, events: 0, seq: null, receivedAt: null, source: null, key: null,
                 mapId: null, data: null, painting: false, lostTimer: null };

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
    clearTimeout(push.lostTimer);
    setOn(false);
  }

  function paintSoon() {
    if (push.painting) { return; }
    push.painting = true;  // events that arrive before the next frame are painted together
    requestAnimationFrame(function () {
      push.painting = false;
      if (push.data && push.on) { window.cockpitMap.paint(push.data); }
    });
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
  }

  function open(key) {
    const source = new EventSource(key);
    source.addEventListener("grids", onGrids);
    source.onerror = function () {
      clearTimeout(push.lostTimer);
      push.lostTimer = setTimeout(function () { if (push.source === source) { setOn(false); } },
                                  LOST_AFTER_MS);
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

  // A stream whose map left the page (another view) and that hears nothing closes here too.
  setInterval(function () {
    if (push.source && !document.getElementById(push.mapId)) { close(); }
  }, 5000);

  window.cockpitPush = push;
  window.dash_clientside = window.dash_clientside || {};
  window.dash_clientside.cockpitPush = { gridPush };
})();
