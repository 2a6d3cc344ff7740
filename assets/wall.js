/* The wall: rotate through child areas; a new critical alert takes the focus for a while.
   Also recover by itself: if the server stops answering, reload once it answers again. */
(function () {
  "use strict";
  const ROTATE_S = 20;
  const FOCUS_S = 45;
  const state = { index: 0, since: 0, seenFocus: null, focusUntil: 0, last: null };

  function pad(n) { return String(n).padStart(2, "0"); }

  function rotate(tick, targets, focus) {
    const now = Date.now();
    const d = new Date(now);
    const clock = pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
    const noUpdate = window.dash_clientside.no_update;
    if (!targets || !targets.length) { return [noUpdate, noUpdate, clock]; }
    if (focus && focus.id !== state.seenFocus) {
      state.seenFocus = focus.id;
      state.focusUntil = now + FOCUS_S * 1000;
      return [{ bounds: focus.bounds, transition: "flyToBounds" }, "⚠ " + targets[0].name, clock];
    }
    if (now < state.focusUntil) { return [noUpdate, noUpdate, clock]; }
    if (state.last !== null && now - state.since < ROTATE_S * 1000) {
      return [noUpdate, noUpdate, clock];
    }
    state.index = state.last === null ? 0 : (state.index + 1) % targets.length;
    state.last = state.index;
    state.since = now;
    const target = targets[state.index];
    return [{ bounds: target.bounds, transition: "flyToBounds" }, target.name, clock];
  }

  // Watchdog: a wall runs for days; after an outage, reload to rebuild a clean page.
  let failures = 0;
  setInterval(function () {
    if (!document.querySelector(".view-wall")) { return; }
    fetch("/healthz", { cache: "no-store" }).then(function (resp) {
      if (resp.ok && failures >= 3) { window.location.reload(); }
      failures = resp.ok ? 0 : failures + 1;
    }).catch(function () { failures += 1; });
  }, 5000);

  window.dash_clientside = Object.assign({}, window.dash_clientside, {
    cockpitWall: { rotate: rotate },
  });
  window.cockpitWall = { state: state };
})();
