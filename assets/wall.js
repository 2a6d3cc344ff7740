/* The wall: rotate through child areas; a new critical alert takes the focus for a while.
   Also recover by itself: if the server stops answering, reload once it answers again. */
(function () {
  "use strict";
  // Seconds on each area, and seconds a new critical alert holds the focus. Read on every tick,
  // so a display (or a test) can change them in place: window.cockpitWall.config.focusS = 10.
  const config = { rotateS: 20, focusS: 45 };
  // mode: "rotate" or "focus"; focusId: the alert focused on; index: the rotation target shown;
  // offered: the focus the server offered at the last of `ticks` ticks
  const state = { index: 0, since: 0, seenFocus: null, focusAt: 0, last: null, mode: "rotate",
                  focusId: null, offered: null, ticks: 0 };

  function pad(n) { return String(n).padStart(2, "0"); }

  function rotate(tick, targets, focus) {
    const now = Date.now();
    const d = new Date(now);
    const clock = pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
    const noUpdate = window.dash_clientside.no_update;
    state.ticks += 1;
    state.offered = focus ? focus.id : null;
    if (!targets || !targets.length) { return [noUpdate, noUpdate, clock]; }
    if (focus && focus.id !== state.seenFocus) {
      state.seenFocus = focus.id;
      state.focusAt = now;
      state.mode = "focus";
      state.focusId = focus.id;
      return [{ bounds: focus.bounds, transition: "flyToBounds" },
              "⚠ " + (focus.name || targets[0].name), clock];
    }
    if (state.mode === "focus") {
      if (now - state.focusAt < config.focusS * 1000) { return [noUpdate, noUpdate, clock]; }
      // the hold is over: back to the area shown before, which gets its full turn again
      state.mode = "rotate";
      state.focusId = null;
      if (state.last !== null) {
        state.since = now;
        const back = targets[Math.min(state.index, targets.length - 1)];
        return [{ bounds: back.bounds, transition: "flyToBounds" }, back.name, clock];
      }
    }
    if (state.last !== null && now - state.since < config.rotateS * 1000) {
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
  window.cockpitWall = { state: state, config: config };
})();
