"""Event to screen, payload per update and web-process memory, in real headless Chromium against
`cockpit demo`, with 1,000 incidents a second flowing. Prints one JSON object.

    python benchmarks/bench_screen.py                 # 120 s steady, Huishan wall (557 grids)
    python benchmarks/bench_screen.py --seconds 30 --rate 200   # a quick look

What it does:

1. Starts `cockpit demo --rate 0 --backfill 0` in a fresh data dir (embedded Redis, gunicorn with
   2 workers, the worker, the alerts engine, and the demo simulator for gauges and trucks only),
   writes an hour of history at ``--history-per-minute`` so every minute bucket of the 1 h
   window exists, and opens a wall token link for ``--area`` (default wx-hs, Huishan: 557 grids)
   in Chromium at 3840x2160.
2. Starts a feed process writing ``--rate`` incidents/s (the demo simulator's places and texts)
   into every grid but ``--markers`` marker grids.
3. Every 1.5-2.5 s (random, so markers fall at every phase of the 1 s poll) XADDs one incident
   into the next marker grid, and SETs a counter that a bare page shows (the raw counterpart,
   open in a second Chromium at the same time): with ``--push sse`` (the default, as the app)
   `_raw.RawPushPage`, a bare event stream; with ``--push poll`` `_raw.RawPollPage`, a bare
   1 Hz polling page.
4. Event to screen = from the XADD (Python's time.time(), halfway through the call) to the
   first painted frame after the wall's grid style function drew that grid with its new count
   (Date.now() in the page: same machine clock). Split into XADD -> grid callback response
   read (or push event received), and response -> painted.
5. Payload: every request's bytes from Chrome's network log (Network.loadingFinished
   encodedDataLength: headers + body as received) per grid update, per tick (all callbacks
   of one interval tick) and per second (everything, heat PNGs included).
6. RSS: VmRSS of each gunicorn worker from /proc/<pid>/status every 2 s.
7. Raw figures in the same run: the bare polling page's XADD-to-paint, and Redis XADD -> XREAD
   (blocked reader on another connection).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _browser import (  # noqa: E402 (after the path set-up)
    Demo,
    MachineCpu,
    NetworkLog,
    RssSampler,
    browser,
    cpu_profile,
    first_paint,
    install_probe,
    load_average,
    percentiles,
    read_probe,
)
from _feed import (  # noqa: E402
    Feed,
    choose_markers,
    marker_point,
    raw_xadd_xread,
    write_history,
    xadd_marker,
)
from _raw import RAW_CANVAS_JS, RAW_KEY, RawPollPage, RawPushPage  # noqa: E402

from cockpit.areastore import Geography, load_geography  # noqa: E402
from cockpit.contract import GROUP, INCIDENTS  # noqa: E402
from cockpit.incidents import scope_grids  # noqa: E402
from cockpit.users import create_wall_token  # noqa: E402

# the grid colours' callback output: the store since 16320e8, the layer's hideout before
GRID_OUTPUTS = ("grid-values.data", "grid-layer.hideout")


def build_parser(description: str = __doc__) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--seconds", type=float, default=120, help="steady measuring time (120)")
    p.add_argument("--warmup", type=float, default=15, help="feed running before measuring (15)")
    p.add_argument("--rate", type=float, default=1000, help="background incidents/s (1000)")
    p.add_argument("--area", default="wx-hs", help="wall area (wx-hs: Huishan, 557 grids)")
    p.add_argument("--markers", type=int, default=12, help="marker grids (12)")
    p.add_argument("--history-per-minute", type=int, default=600,
                   help="incidents in each of the last 60 minutes (600)")  # fmt: skip
    p.add_argument("--pages", type=int, default=1, help="real wall pages measuring (1)")
    p.add_argument("--width", type=int, default=3840)
    p.add_argument("--height", type=int, default=2160)
    p.add_argument("--data-dir", help="demo data dir (default: a new temporary one)")
    p.add_argument("--scale", type=float, default=1.0, help="demo city scale (1)")
    p.add_argument("--profile-seconds", type=float, default=10,
                   help="Chrome CPU profile of a page after the run (10; 0: none)")  # fmt: skip
    p.add_argument("--refresh-ms", type=int,
                   help="poll interval, app (COCKPIT_REFRESH_MS) and raw page")  # fmt: skip
    p.add_argument("--push", choices=("sse", "poll"), default="sse",
                   help="how grid values reach the page (COCKPIT_PUSH; default sse)")  # fmt: skip
    p.add_argument("--app-dir", type=Path,
                   help="run the cockpit from this copy of the tree (what-ifs)")  # fmt: skip
    p.add_argument("--reloads", type=int, default=2,
                   help="warm page loads timed after the cold one (2)")  # fmt: skip
    p.add_argument("--dump-probe", type=Path,
                   help="write the in-page probe's raw records (responses, restyles, long "
                        "tasks) of the measuring time to this JSON file")  # fmt: skip
    return p


def chromium_version() -> str:
    try:
        out = subprocess.run(["/usr/bin/chromium", "--version"], capture_output=True, text=True,
                             timeout=30).stdout  # fmt: skip
    except OSError:
        return "?"
    return out.strip().split("\n")[-1]


def header(args: argparse.Namespace, script: str) -> dict:
    return {
        "command": " ".join(["python", f"benchmarks/{script}", *sys.argv[1:]]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": _cpus(), "python": platform.python_version(),
                    "chromium": chromium_version()},  # fmt: skip
        "load_average_start": load_average(),
    }


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


class Pages:
    """The real wall pages of a run, each with its probe and network log."""

    def __init__(self, drivers: list, net: list[NetworkLog]) -> None:
        self.drivers = drivers
        self.net = net
        self.probes: list[dict[str, list]] = [
            {"responses": [], "changes": [], "restyles": [], "longtasks": []} for _ in drivers
        ]

    def metrics(self) -> list[dict[str, float]]:
        """Chrome's cumulative main-thread times (CDP Performance.getMetrics), per page."""
        out = []
        for driver in self.drivers:
            got = driver.execute_cdp_cmd("Performance.getMetrics", {})["metrics"]
            out.append({m["name"]: m["value"] for m in got})
        return out

    def collect(self) -> None:
        for k, driver in enumerate(self.drivers):
            got = read_probe(driver)
            for name, records in got.items():
                self.probes[k][name].extend(records or [])
            self.net[k].read(driver)


def templates(net: NetworkLog) -> dict[str, str]:
    """The last request body the page sent for each tick-driven callback (by its outputs): the
    interval tick's, or one of the stores a push stream's view events drive."""
    out: dict[str, str] = {}
    for rec in sorted(net.requests.values(), key=lambda r: r["t"]):
        if rec.get("post") and rec.get("trigger") is not None:
            out[rec["outputs"]] = rec["post"]
    return out


def event_to_screen(sent: list[dict], pages: Pages) -> dict:
    """Match each marker to the first change of its grid to its count on each page."""
    to_change, to_paint, to_response, response_to_paint = [], [], [], []
    missed = 0
    for k in range(len(pages.drivers)):
        changes = pages.probes[k]["changes"]
        responses = sorted(r["received"] for r in pages.probes[k]["responses"])
        for m in sent:
            hit = next((c for c in changes if c["grid"] == m["grid"] and c["value"] >= m["value"]
                        and c.get("paint")), None)  # fmt: skip
            if hit is None:
                missed += 1
                continue
            to_change.append(hit["t"] - m["t"])
            to_paint.append(hit["paint"] - m["t"])
            i = int(np.searchsorted(responses, hit["t"], side="right")) - 1
            if i >= 0 and responses[i] >= m["t"]:
                to_response.append(responses[i] - m["t"])
                response_to_paint.append(hit["paint"] - responses[i])
    return {
        "xadd_to_painted_ms": percentiles(to_paint),
        "xadd_to_restyled_ms": percentiles(to_change),
        "xadd_to_grid_response_ms": percentiles(to_response),
        "grid_response_to_painted_ms": percentiles(response_to_paint),
        "markers": len(sent),
        "pages": len(pages.drivers),
        "missed": missed,
    }


def raw_page_latency(sent: list[dict], records: list[dict]) -> dict:
    lat = []
    for m in sent:
        hit = next((r for r in records if int(r["value"]) >= m["value_raw"] and r.get("paint")),
                   None)  # fmt: skip
        if hit is not None:
            lat.append(hit["paint"] - m["t_raw"])
    return {"set_to_painted_ms": percentiles(lat), "missed": len(sent) - len(lat)}


def merged_size(body: str) -> int | None:
    """The body's length if the grid values travelled as one Patch Merge (``values.update``)
    instead of one Assign operation per grid: the same values, computed from the real body."""
    try:
        doc = json.loads(body)
        response = doc["response"]
        hideout = (response["grid-values"]["data"] if "grid-values" in response
                   else response["grid-layer"]["hideout"])  # fmt: skip
        ops = hideout["operations"]
    except (ValueError, KeyError, TypeError):
        return None
    merged, rest = {}, []
    for op in ops:
        loc = op.get("location", [])
        if op.get("operation") == "Assign" and len(loc) == 2 and loc[0] == "values":
            merged[loc[1]] = op["params"]["value"]
        else:
            rest.append(op)
    if merged:
        rest.append({"operation": "Merge", "location": ["values"], "params": {"value": merged}})
    hideout["operations"] = rest
    return len(json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode())


def payload(pages: Pages, since_s: float, until_s: float) -> dict:
    grid_wire, grid_body, tick_wire, tick_upload, other_per_s, heat = [], [], [], [], [], []
    push_events: list[int] = []
    per_second = []
    for net in pages.net:
        reqs = [r for r in net.finished(since_s) if r["t"] <= until_s]
        ticks: dict[int, list[dict]] = {}
        for r in reqs:
            if r.get("tick") is not None:
                ticks.setdefault(r["tick"], []).append(r)
                if any(o in r["outputs"] for o in GRID_OUTPUTS) and r.get("status") == 200:
                    grid_wire.append(r["wire"])
                    grid_body.append(r["body"])
            elif "/heat/" in r["url"]:
                heat.append(r["wire"])
        # a tick counts when all its requests fall inside the window
        for group in ticks.values():
            tick_wire.append(sum(r["wire"] for r in group))
            tick_upload.append(sum(r["upload"] for r in group))
        pushed = [e["wire"] for e in net.pushes
                  if since_s <= e["t"] <= until_s and e["event"] == "grids"]  # fmt: skip
        grid_wire += pushed
        grid_body += pushed
        push_events.append(len(pushed))
        span = max(1e-9, until_s - since_s)
        per_second.append((sum(r["wire"] for r in reqs) + sum(pushed)) / span)
        other_per_s.append(sum(r["wire"] for r in reqs if r.get("tick") is None) / span)
    per_callback: dict[str, list[int]] = {}
    for net in pages.net:
        for r in net.finished(since_s):
            if r["t"] <= until_s and r.get("tick") is not None:
                per_callback.setdefault(r["outputs"].strip(".").split(".")[0], []).append(r["wire"])
    bodies = [r.get("body") for p in pages.probes for r in p["responses"] if r.get("body")]
    merged = [m for m in (merged_size(b) for b in bodies) if m is not None]
    return {
        "grid_update_wire_bytes": percentiles(grid_wire, 0),
        "push_events_per_page": push_events,
        "grid_update_body_bytes": percentiles(grid_body, 0),
        "tick_wire_bytes_all_callbacks": percentiles(tick_wire, 0),
        "tick_upload_bytes": percentiles(tick_upload, 0),
        "wire_bytes_per_callback": {k: percentiles(v, 0) for k, v in per_callback.items()},
        "heat_png_fetches": len(heat),
        "heat_png_wire_bytes": percentiles(heat, 0),
        "all_bytes_per_second_per_page": round(float(np.mean(per_second)), 0) if per_second else 0,
        "non_callback_bytes_per_second_per_page":
            round(float(np.mean(other_per_s)), 0) if other_per_s else 0,
        "grid_body_bytes_if_one_merge": percentiles(merged, 0),
        "grid_body_bytes_same_responses": percentiles([len(b.encode()) for b in bodies], 0),
    }  # fmt: skip


def restyle(pages: Pages, since_s: float, until_s: float) -> dict:
    lo, hi = since_s * 1000, until_s * 1000
    seconds = until_s - since_s
    recs = [r for p in pages.probes for r in p["restyles"]
            if r.get("paint") and lo <= r["start"] <= hi]  # fmt: skip
    long = [t for p in pages.probes for t in (p["longtasks"] or []) if lo <= t["t"] <= hi]
    # colour update: a grid callback response arrived -> the painted frame of its restyle
    colour = []
    for p in pages.probes:
        received = sorted(r["received"] for r in p["responses"])
        for rec in p["restyles"]:
            if not (rec.get("paint") and lo <= rec["start"] <= hi):
                continue
            i = int(np.searchsorted(received, rec["start"], side="right")) - 1
            if i >= 0 and rec["start"] - received[i] < 1000:
                colour.append(rec["paint"] - received[i])
    return {
        "colour_update_response_to_painted_ms": percentiles(colour),
        "restyles": len(recs),
        "grid_calls_per_restyle": percentiles([r["calls"] for r in recs], 0),
        "style_pass_ms": percentiles([r["end"] - r["start"] for r in recs]),
        "style_start_to_painted_ms": percentiles([r["paint"] - r["start"] for r in recs]),
        "long_tasks_per_page_per_minute":
            round(len(long) / max(1, len(pages.drivers)) / seconds * 60, 1),
        "long_task_ms": percentiles([t["ms"] for t in long]),
        "main_thread_share_in_long_tasks":
            round(sum(t["ms"] for t in long) / max(1, len(pages.drivers)) / (seconds * 1000), 3),
    }  # fmt: skip


def raw_canvas(driver, base_url: str, args: argparse.Namespace) -> dict:  # type: ignore[no-untyped-def]
    """RAW_CANVAS_JS in a new tab of the same origin (the session cookie fetches the scope's
    GeoJSON), at the wall's size; the wall tab is left as it was."""
    wall = driver.current_window_handle
    driver.switch_to.new_window("tab")
    try:
        driver.get(base_url + "/healthz")
        got = driver.execute_async_script(
            RAW_CANVAS_JS, "/geo/grid.geojson?v=raw", args.width, args.height, 5
        )
    finally:
        driver.close()
        driver.switch_to.window(wall)
    if "error" in got:
        return got
    return {"features": got["features"], "fetch_parse_ms": round(got["fetch_parse_ms"]),
            "first_paint_ms": round(got["first_paint_ms"]),
            "recolour_ms": percentiles(got["recolour_ms"])}  # fmt: skip


def main_thread(start: list[dict], end: list[dict]) -> list[dict[str, float]]:
    """Share of wall time each page's main thread spent in tasks, script, layout, style."""
    names = {"task_share": "TaskDuration", "script_share": "ScriptDuration",
             "layout_share": "LayoutDuration", "style_share": "RecalcStyleDuration"}  # fmt: skip
    out = []
    for a, b in zip(start, end, strict=True):
        span = b["Timestamp"] - a["Timestamp"]
        out.append({name: round((b[key] - a[key]) / span, 3) for name, key in names.items()})
    return out


def worker_lag(demo: Demo) -> int | None:
    with contextlib.suppress(Exception):
        for group in demo.redis().xinfo_groups(INCIDENTS):
            if group["name"].decode() == GROUP:
                return int(group.get("lag") or 0)
    return None


def run(
    args: argparse.Namespace,
    script: str = "bench_screen.py",
    during: Callable[[Demo, str, dict[str, str]], contextlib.AbstractContextManager] | None = None,
    after: Callable[[Demo, str, dict[str, str]], dict] | None = None,
) -> dict:
    """One run; ``during`` (the viewer benchmark's synthetic viewers) is entered for the
    measuring time with the demo, the wall token and the callback bodies the real page sent;
    ``after`` runs once that is over and the browsers and the feed are closed."""
    out = header(args, script)
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="bench-screen-"))
    started = time.monotonic()
    settings = {"COCKPIT_REFRESH_MS": str(args.refresh_ms)} if args.refresh_ms else {}
    settings["COCKPIT_PUSH"] = args.push
    demo = Demo.start(data_dir, scale=args.scale, app_dir=args.app_dir, settings=settings)
    try:
        r = demo.redis()
        geo: Geography = load_geography(r)
        grids = sorted(scope_grids(geo, args.area))
        markers = choose_markers(geo, grids, args.markers)
        points = {g: marker_point(geo, g) for g in markers}
        out["setup"] = {
            "area": args.area, "grids": len(grids), "city_grids": len(geo.grid_ids),
            "history_incidents": write_history(r, geo, markers, args.history_per_minute),
            "demo_start_s": round(time.monotonic() - started, 1),
            "app_dir": str(args.app_dir or "this repository"),
            "settings": settings,
        }  # fmt: skip
        token = create_wall_token(r, args.area, "bench wall")
        with contextlib.ExitStack() as stack:
            drivers = [stack.enter_context(browser(args.width, args.height))
                       for _ in range(args.pages)]  # fmt: skip
            raw_driver = stack.enter_context(browser(800, 600))
            raw_kind = RawPushPage if args.push == "sse" else RawPollPage
            raw_page = stack.enter_context(raw_kind(demo.redis_url, args.refresh_ms or 1000))
            wall_url = f"{demo.base_url}/wall/{token}"
            out["first_paint_wall_cold"] = [first_paint(d, wall_url, len(grids)) for d in drivers]
            out["first_paint_wall_warm"] = [first_paint(drivers[0], wall_url, len(grids))
                                            for _ in range(args.reloads)]  # fmt: skip
            r.set(RAW_KEY, "0")
            raw_driver.get(raw_page.url)
            feed = stack.enter_context(Feed(demo.redis_url, markers, args.rate))
            time.sleep(args.warmup)
            nets = [NetworkLog() for _ in drivers]
            for d, net in zip(drivers, nets, strict=True):
                net.read(d)
                install_probe(d, markers)
                d.execute_script("window.__bench.keepBodies = true")
            captured = templates(nets[0])
            for net in nets:
                net.requests.clear()
            pages = Pages(drivers, nets)
            for d in drivers:
                d.execute_cdp_cmd("Performance.enable", {})
            metrics_start = pages.metrics()
            rss = RssSampler(demo)
            extra = stack.enter_context(during(demo, token, captured)) if during else None
            machine = MachineCpu(demo)
            machine.start()
            sent, t0 = steady(r, markers, points, pages, rss, args.seconds)
            t1 = time.time()
            out["cpu_by_process_group"] = machine.stop()
            out["main_thread_per_page"] = main_thread(metrics_start, pages.metrics())
            rss.sample()
            out["rss"] = rss.summary()  # CPU shares over the measuring time only
            raw_xread = raw_xadd_xread(demo.redis_url)
            out["feed"] = {"asked_per_s": args.rate, "achieved_per_s": feed.achieved_rate(),
                           "worker_lag_at_end": worker_lag(demo)}  # fmt: skip
            if extra is not None:
                out["viewers"] = extra.summary()
            time.sleep(3)  # the last markers reach the screen
            pages.collect()
            raw_records = raw_driver.execute_script("return window.__raw")
            if args.profile_seconds:
                out["page_cpu_profile"] = cpu_profile(drivers[0], args.profile_seconds)
            out["raw_canvas"] = raw_canvas(drivers[0], demo.base_url, args)
        if after is not None:  # browsers and feed closed: the hook runs on a quiet server
            out["after"] = after(demo, token, captured)
        e2s = event_to_screen(sent, pages)
        raw = raw_page_latency(sent, raw_records)
        out["event_to_screen"] = e2s
        out["raw_poll_page"] = raw
        out["raw_redis_xadd_to_xread_ms"] = percentiles(raw_xread, 3)
        p95, raw_p95 = e2s["xadd_to_painted_ms"]["p95"], raw["set_to_painted_ms"]["p95"]
        x95 = out["raw_redis_xadd_to_xread_ms"]["p95"]
        out["ratios"] = {
            "e2s_p95_over_raw_poll_page_p95": round(p95 / raw_p95, 2) if p95 and raw_p95 else None,
            "e2s_p95_over_raw_xadd_xread_p95": round(p95 / x95, 0) if p95 and x95 else None,
        }
        out["payload"] = payload(pages, t0, t1)
        out["restyle"] = restyle(pages, t0, t1)
        if args.dump_probe:
            args.dump_probe.write_text(json.dumps({"t0": t0, "t1": t1, "probes": pages.probes}))
        out["load_average_end"] = load_average()
        return out
    finally:
        demo.stop()


def steady(r, markers, points, pages: Pages, rss: RssSampler, seconds: float):  # type: ignore[no-untyped-def]
    """XADD a marker every 1.5-2.5 s for ``seconds``; sample RSS and drain the logs meanwhile."""
    rng = random.Random(1)
    sent: list[dict] = []
    counts = dict.fromkeys(markers, 0)
    t0 = time.time()
    next_marker = time.monotonic() + 1.0
    next_sample = time.monotonic()
    next_collect = time.monotonic() + 5
    end = time.monotonic() + seconds
    k = 0
    while time.monotonic() < end:
        now = time.monotonic()
        if now >= next_marker:
            grid = markers[k % len(markers)]
            counts[grid] += 1
            t = xadd_marker(r, points[grid], f"marker-{int(t0)}-{k}")
            before = time.time()
            r.set(RAW_KEY, str(k + 1))
            t_raw = (before + time.time()) / 2 * 1000
            sent.append({"grid": grid, "value": counts[grid], "t": t,
                         "value_raw": k + 1, "t_raw": t_raw})  # fmt: skip
            k += 1
            next_marker = now + rng.uniform(1.5, 2.5)
        if now >= next_sample:
            rss.sample()
            next_sample = now + 2
        if now >= next_collect:
            pages.collect()
            next_collect = now + 5
        time.sleep(max(0.0, min(next_marker, next_sample, next_collect, end) - time.monotonic()))
    return sent, t0


def main() -> int:
    args = build_parser().parse_args()
    print(json.dumps(run(args), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
