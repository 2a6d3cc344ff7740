"""Shared parts of the browser benchmarks: `cockpit demo` as a user starts it, headless Chromium,
the in-page probe that timestamps what the screen shows, and the network log.

Not a test module: the scripts in benchmarks/ import it and print JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import psutil
import redis
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check: Callable[[], object], timeout: float, what: str, interval: float = 0.2):
    """Poll ``check`` until it returns something truthy; raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def percentiles(values: list[float], digits: int = 1) -> dict[str, float | int | None]:
    """n, p50, p95, max of ``values`` (None when empty)."""
    if not values:
        return {"n": 0, "p50": None, "p95": None, "max": None}
    arr = np.asarray(values, dtype=float)
    return {
        "n": len(values),
        "p50": round(float(np.percentile(arr, 50)), digits),
        "p95": round(float(np.percentile(arr, 95)), digits),
        "max": round(float(arr.max()), digits),
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class Demo:
    """`cockpit demo` in its own data dir and process group; stopped with ``stop()``."""

    def __init__(self, data_dir: Path, port: int, proc: subprocess.Popen[bytes]) -> None:
        self.data_dir = data_dir
        self.port = port
        self.proc = proc
        self.base_url = f"http://127.0.0.1:{port}"

    @classmethod
    def start(cls, data_dir: Path, *, rate: float = 0.0, backfill: int = 0, scale: float = 1.0,
              web_workers: int = 2, timeout: float = 600, app_dir: Path | None = None,
              settings: dict[str, str] | None = None) -> Demo:  # fmt: skip
        """``app_dir``: run the cockpit from that copy of the source tree (a what-if);
        ``settings``: COCKPIT_* environment settings for it (others are not passed on)."""
        data_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("COCKPIT_")}
        env.update(settings or {})
        if app_dir is not None:
            env["PYTHONPATH"] = str(app_dir)  # found before the editable install
        log = (data_dir / "demo.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "cockpit", "demo", "--port", str(port), "--data-dir",
             str(data_dir), "--rate", str(rate), "--backfill", str(backfill), "--scale",
             str(scale), "--web-workers", str(web_workers)],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            cwd=app_dir or REPO,
        )  # fmt: skip
        demo = cls(data_dir, port, proc)
        try:
            wait_for(lambda: proc.poll() is not None or demo.healthy(), timeout, "demo up", 0.5)
            if proc.poll() is not None:
                raise RuntimeError((data_dir / "demo.log").read_text())
        except BaseException:
            demo.stop()
            raise
        return demo

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.base_url + "/healthz", timeout=2) as resp:  # noqa: S310
                return resp.status == 200
        except OSError:
            return False

    @property
    def redis_url(self) -> str:
        return (self.data_dir / "redis" / "url").read_text().strip()

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url)

    def password(self, user: str) -> str:
        log = (self.data_dir / "demo.log").read_text(encoding="utf-8")
        match = re.search(rf"^\s+\w+\s+{re.escape(user)}\s+(\S+)\s+area", log, re.MULTILINE)
        if not match:
            raise RuntimeError(f"demo printed no sign-in for {user}")
        return match.group(1)

    def web_workers(self) -> list[psutil.Process]:
        """The gunicorn worker processes: forks of the demo process (same command line), unlike
        the worker, alerts and simulator children it starts with ``-m cockpit <command>``."""
        master = psutil.Process(self.proc.pid)
        return [c for c in master.children() if c.cmdline() == master.cmdline()]

    def stop(self) -> None:
        url = None
        with contextlib.suppress(OSError):
            url = self.redis_url
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        # the embedded Redis runs in a session of its own: a demo that had to be killed leaves
        # it running, so stop the one this run started (its data dir is a scratch one)
        if url and (self.data_dir / "redis" / "url").exists():
            with contextlib.suppress(redis.RedisError):
                redis.Redis.from_url(url, socket_timeout=5).shutdown(nosave=True)


def vm_rss_mb(pid: int) -> float | None:
    """VmRSS of a process from /proc/<pid>/status, in MB (None once it is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.MULTILINE)
    return round(int(match.group(1)) / 1024, 1) if match else None


class RssSampler:
    """Samples VmRSS of the gunicorn workers; ``summary()`` gives each worker's max and last
    RSS, and the CPU it used between the first and last sample (1.0 = one core busy)."""

    def __init__(self, demo: Demo) -> None:
        self.demo = demo
        self.samples: dict[int, list[float]] = {}
        self.cpu: dict[int, list[tuple[float, float]]] = {}

    def sample(self) -> None:
        for proc in self.demo.web_workers():
            rss = vm_rss_mb(proc.pid)
            if rss is not None:
                self.samples.setdefault(proc.pid, []).append(rss)
                with contextlib.suppress(psutil.Error):
                    times = proc.cpu_times()
                    self.cpu.setdefault(proc.pid, []).append(
                        (time.monotonic(), times.user + times.system))

    def summary(self) -> dict[str, object]:
        per = {}
        for pid, values in self.samples.items():
            cpu = self.cpu.get(pid, [])
            share = None
            if len(cpu) > 1 and cpu[-1][0] > cpu[0][0]:
                share = round((cpu[-1][1] - cpu[0][1]) / (cpu[-1][0] - cpu[0][0]), 2)
            per[str(pid)] = {"max_mb": max(values), "last_mb": values[-1],
                             "samples": len(values), "cpu_share": share}  # fmt: skip
        top = max((max(v) for v in self.samples.values()), default=None)
        return {"per_worker": per, "max_mb": top}


def make_browser(width: int = 1920, height: int = 1080) -> webdriver.Chrome:
    """Headless Debian Chromium with the network (performance) log on, like the e2e tests."""
    binary = shutil.which("chromium") or "/usr/bin/chromium"
    driver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage", "--hide-scrollbars",
                 # a page in a background tab would have its timers throttled to 1 Hz or less
                 "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                 "--disable-backgrounding-occluded-windows",
                 f"--window-size={width},{height}", "--force-device-scale-factor=1"):  # fmt: skip
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    chrome = webdriver.Chrome(options=opts, service=Service(driver))
    chrome.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )
    chrome.set_script_timeout(120)
    return chrome


@contextlib.contextmanager
def browser(width: int = 1920, height: int = 1080) -> Iterator[webdriver.Chrome]:
    driver = make_browser(width, height)
    try:
        yield driver
    finally:
        driver.quit()


def sign_in(driver: webdriver.Chrome, demo: Demo, user: str, path: str = "/") -> None:
    """Through the real sign-in form, as a person would."""
    from selenium.webdriver.common.by import By

    driver.get(demo.base_url + "/login?next=" + path)
    driver.find_element(By.ID, "name").send_keys(user)
    driver.find_element(By.ID, "password").send_keys(demo.password(user))
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait_for(lambda: "/login" not in driver.current_url, 30, f"{user} signed in")


# -- the in-page probe -----------------------------------------------------------------------

# Installed once the map is up. It times three moments, all on the browser's Date.now() (the
# same machine clock as Python's time.time()):
#  - ``responses``: each grid-colour callback response (``received``: Dash's fetch resolved, before
#    Dash's own handler runs; ``read``: a copy of its body read);
#  - ``changes``: each time the grid style function draws a watched grid with a new value
#    (cockpitMap.state.drawn is written by that function, so a Proxy on it sees every restyle);
#  - ``paints``: the frame after such a restyle (requestAnimationFrame, then a task: the
#    canvas redraw that Leaflet queued for that frame has been committed).
# ``restyles`` times every grid restyle as a whole: first style call of a tick to the painted
# frame. ``longtasks`` are the main thread's long tasks (> 50 ms).
PROBE_JS = r"""
const watch = new Set(arguments[0] || []);
const probe = window.__bench = {responses: [], changes: [], restyles: [], longtasks: []};
const state = window.cockpitMap.state;
const seen = {};
let pending = null;
function painted(rec) {
  requestAnimationFrame(() => setTimeout(() => { rec.paint = Date.now(); }, 0));
}
state.drawn = new Proxy(state.drawn, {
  set(target, key, value) {
    target[key] = value;
    if (pending === null) {
      pending = {start: Date.now(), calls: 0};
      const rec = pending;
      probe.restyles.push(rec);
      queueMicrotask(() => { rec.end = Date.now(); pending = null; painted(rec); });
    }
    pending.calls += 1;
    if (watch.has(key) && seen[key] !== value) {
      seen[key] = value;
      const rec = {grid: key, value: value, t: Date.now()};
      probe.changes.push(rec);
      painted(rec);
    }
    return true;
  }
});
const origFetch = window.fetch;
window.fetch = function (url, init) {
  const body = (init && typeof init.body === "string") ? init.body : "";
  const sent = Date.now();
  const p = origFetch.apply(this, arguments);
  // the grid colours' output: the store (since 16320e8) or, before, the layer's hideout
  if (String(url).includes("_dash-update-component") &&
      (body.includes("grid-values.data") || body.includes("grid-layer.hideout"))) {
    return p.then(res => {
      // runs before Dash's own handler (registered first): the response has arrived
      const rec = {sent: sent, received: Date.now()};
      probe.responses.push(rec);
      res.clone().text().then(text => {
        rec.read = Date.now();
        rec.bytes = text.length;
        if (probe.keepBodies) { rec.body = text; }
      });
      return res;
    });
  }
  return p;
};
// pushed grid values (assets/push.js): each event counts as a grid response, read on arrival
let hooked = null;
function hookPush() {
  const source = window.cockpitPush && window.cockpitPush.source;
  if (!source || source === hooked) { return; }
  hooked = source;
  source.addEventListener("grids", event => {
    const now = Date.now();
    probe.responses.push({sent: now, received: now, read: now, bytes: event.data.length,
                          push: true});
  });
}
hookPush();
setInterval(hookPush, 100);
try {
  new PerformanceObserver(list => {
    for (const e of list.getEntries()) {
      probe.longtasks.push({t: performance.timeOrigin + e.startTime, ms: e.duration});
    }
  }).observe({type: "longtask", buffered: false});
} catch (e) { probe.longtasks = null; }
return true;
"""


# Installed before navigation (CDP Page.addScriptToEvaluateOnNewDocument): once per frame it
# counts the grid layers on the map; ``drawn`` is when all ``n`` are on it, ``painted`` the frame
# after (the canvas redraw queued for them committed), ``coloured`` the first painted frame after
# a style call drew some grid with a value. Times are Date.now(); ``origin`` is the navigation
# start (performance.timeOrigin).
FIRST_PAINT_JS = r"""
(function () {
  const need = %d;
  const out = window.__firstPaint = {origin: performance.timeOrigin};
  function count(m) {
    let n = 0;
    for (const k in m.state.layers) { if (m.state.layers[k]._map) { n++; } }
    return n;
  }
  function check() {
    const m = window.cockpitMap;
    if (m && !out.drawn && count(m) >= need) {
      out.drawn = Date.now();
      requestAnimationFrame(() => setTimeout(() => { out.painted = Date.now(); }, 0));
    }
    if (m && out.drawn && !out.colouredAt) {
      for (const k in m.state.drawn) {
        if (m.state.drawn[k] !== undefined) {
          out.colouredAt = Date.now();
          requestAnimationFrame(() => setTimeout(() => { out.coloured = Date.now(); }, 0));
          break;
        }
      }
    }
    if (!out.coloured) { requestAnimationFrame(check); }
  }
  requestAnimationFrame(check);
})();
"""


def first_paint(driver: webdriver.Chrome, url: str, n_grids: int, timeout: float = 300) -> dict:
    """Load ``url`` and time the grid layer: ms from navigation start to all ``n_grids`` drawn
    and painted, and to the first painted frame with values (see FIRST_PAINT_JS)."""
    script = driver.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument", {"source": FIRST_PAINT_JS % n_grids}
    )
    try:
        asked = time.time() * 1000
        driver.get(url)
        get = ("const f = window.__firstPaint;"
               " return f && f.painted && (!need || f.coloured) ? f : null")
        out = wait_for(lambda: driver.execute_script("const need = false; " + get),
                       timeout, f"{n_grids} grids painted", 0.1)  # fmt: skip
        with contextlib.suppress(TimeoutError):  # a city with no incidents is never coloured
            out = wait_for(lambda: driver.execute_script("const need = true; " + get),
                           timeout, f"{n_grids} grids coloured", 0.1)  # fmt: skip
    finally:
        driver.execute_cdp_cmd(
            "Page.removeScriptToEvaluateOnNewDocument", {"identifier": script["identifier"]}
        )
    origin = out["origin"]
    coloured = out.get("coloured")
    return {
        "navigation_to_painted_ms": round(out["painted"] - origin),
        "navigation_to_drawn_ms": round(out["drawn"] - origin),
        "navigation_to_coloured_ms": round(coloured - origin) if coloured else None,
        "python_get_to_painted_ms": round(out["painted"] - asked),
    }


def install_probe(driver: webdriver.Chrome, watch: list[str]) -> None:
    driver.execute_script(PROBE_JS, watch)


def read_probe(driver: webdriver.Chrome) -> dict:
    """Take the probe's records so far (and clear them in the page)."""
    return driver.execute_script(
        "const p = window.__bench; const done = p.responses.filter(r => r.read);"
        " p.responses = p.responses.filter(r => !r.read);"
        " const out = {responses: done, changes: p.changes.filter(r => r.paint),"
        " restyles: p.restyles.filter(r => r.paint), longtasks: p.longtasks};"
        "p.changes = p.changes.filter(r => !r.paint);"
        "p.restyles = p.restyles.filter(r => !r.paint); if (p.longtasks) p.longtasks = [];"
        "return out;"
    )


# -- the network log ---------------------------------------------------------------------------


class NetworkLog:
    """Requests from Chrome's performance log: URL, Dash tick number, bytes on the wire.

    ``wire`` is Network.loadingFinished's encodedDataLength (response headers and body as
    received); ``body`` is that minus the bytes received by Network.responseReceived (headers).
    """

    def __init__(self) -> None:
        self.requests: dict[str, dict] = {}
        self.pushes: list[dict] = []  # events of push streams: wall time and bytes
        self.streams: dict[str, tuple[float, float]] = {}  # kept when requests are cleared

    def read(self, driver: webdriver.Chrome) -> None:
        for entry in driver.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            method, params = msg["method"], msg.get("params", {})
            rid = params.get("requestId")
            if method == "Network.requestWillBeSent":
                req = params["request"]
                self.requests[rid] = {
                    "url": req["url"], "t": params["wallTime"],
                    "upload": len(req.get("postData") or ""),
                    "tick": _tick_of(req.get("postData")),
                    "trigger": _trigger_of(req.get("postData")),
                    "outputs": _outputs_of(req.get("postData")),
                    "post": req.get("postData") if "_dash-update-component" in req["url"] else None,
                }  # fmt: skip
                if params.get("type") == "EventSource" or "/push/" in req["url"]:
                    self.streams[rid] = (params["wallTime"], params["timestamp"])
            elif method == "Network.responseReceived" and rid in self.requests:
                self.requests[rid]["headers"] = params["response"].get("encodedDataLength", 0)
                self.requests[rid]["status"] = params["response"].get("status")
            elif method == "Network.eventSourceMessageReceived" and rid in self.streams:
                # a pushed event: its wall time from the stream's request (same clock base)
                wall, monotonic = self.streams[rid]
                text = (f"event: {params.get('eventName', '')}\nid: {params.get('eventId', '')}"
                        f"\ndata: {params.get('data', '')}\n\n")  # fmt: skip
                self.pushes.append({"t": wall + params["timestamp"] - monotonic,
                                    "wire": len(text.encode()),
                                    "event": params.get("eventName")})  # fmt: skip
            elif method == "Network.loadingFinished" and rid in self.requests:
                rec = self.requests[rid]
                rec["wire"] = int(params["encodedDataLength"])
                rec["body"] = rec["wire"] - int(rec.get("headers") or 0)

    def finished(self, since: float = 0.0) -> list[dict]:
        return [r for r in self.requests.values() if "wire" in r and r["t"] >= since]


def _post(post: str | None) -> dict:
    if not post:
        return {}
    try:
        return json.loads(post)
    except ValueError:
        return {}


# The stores that drive the live parts' callbacks: the interval tick, or (cockpit.ids) the
# versions a push stream's view events carry, or the tick passed on while nothing is pushed.
TICK_IDS = ("tick", "tick-alerts", "tick-fleet", "tick-slow", "grid-poll")


def _tick_input(post: str | None) -> dict | None:
    for item in _post(post).get("inputs", []):
        if isinstance(item, dict) and item.get("id") in TICK_IDS:
            return item
    return None


def _tick_of(post: str | None) -> int | str | None:
    """The tick number (or pushed version) a live part's callback request was sent for."""
    item = _tick_input(post)
    return item.get("value") if item else None


def _trigger_of(post: str | None) -> str | None:
    """Which of the TICK_IDS drives the callback of this request."""
    item = _tick_input(post)
    return item.get("id") if item else None


def _outputs_of(post: str | None) -> str:
    out = _post(post).get("output")
    return out if isinstance(out, str) else ""


def cpu_profile(driver: webdriver.Chrome, seconds: float, top: int = 15) -> dict:
    """Chrome's sampling CPU profiler (CDP Profiler) over ``seconds`` of the page's main thread:
    the functions with the most self time, and the share of samples spent idle."""
    driver.execute_cdp_cmd("Profiler.enable", {})
    driver.execute_cdp_cmd("Profiler.setSamplingInterval", {"interval": 1000})
    driver.execute_cdp_cmd("Profiler.start", {})
    time.sleep(seconds)
    profile = driver.execute_cdp_cmd("Profiler.stop", {})["profile"]
    driver.execute_cdp_cmd("Profiler.disable", {})
    nodes = {n["id"]: n for n in profile["nodes"]}
    deltas = profile.get("timeDeltas", [])
    self_ms: dict[str, float] = {}
    for node_id, dt in zip(profile.get("samples", []), deltas, strict=False):
        frame = nodes[node_id]["callFrame"]
        url = frame.get("url", "").rsplit("/", 1)[-1].split("?")[0]
        where = f"{url}:{frame.get('lineNumber', 0) + 1}:{frame.get('columnNumber', 0) + 1}"
        name = f"{frame.get('functionName') or '(anonymous)'} {where}"
        self_ms[name] = self_ms.get(name, 0.0) + dt / 1000
    total = sum(self_ms.values()) or 1.0
    idle = sum(ms for name, ms in self_ms.items() if name.startswith("(idle)"))
    busy = sorted(((ms, name) for name, ms in self_ms.items() if not name.startswith("(idle)")),
                  reverse=True)[:top]  # fmt: skip
    return {"seconds": seconds, "idle_share": round(idle / total, 3),
            "top_self_ms": [[name, round(ms)] for ms, name in busy]}  # fmt: skip


class MachineCpu:
    """CPU used by every process on the machine between ``start()`` and ``stop()``, grouped
    (1.0 = one core busy), so a figure can be read against what else was running.

    This run's own processes are told apart from the rest of the machine (another engineer's
    benchmark, its Redis): the demo's web workers, the demo's other processes (worker, alerts,
    simulator), the demo's Redis (its socket is in the demo's data dir), this benchmark's
    children (Chromium, the feed, synthetic viewers, raw apps) and this process; anything else is
    grouped by process name as ``other: <name>``. Processes are sampled every ``every``
    seconds in a thread, so one that starts and exits within the span (another engineer's
    short benchmark) is counted up to its last sample."""

    def __init__(self, demo: Demo, every: float = 1.0) -> None:
        self.demo = demo
        self.every = every
        self.before: dict[int, tuple[str, float]] = {}
        self.last: dict[int, tuple[str, float]] = {}
        self.t0 = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _group(self, proc: psutil.Process, web: set[int], demo: set[int], mine: set[int]) -> str:
        if proc.pid in web:
            return "cockpit web (gunicorn workers)"
        if proc.pid in demo:
            return "cockpit demo: worker, alerts, simulator"
        if proc.pid == os.getpid():
            return "this benchmark (markers, selenium)"
        cmd = " ".join(proc.cmdline())
        if "redis-server" in cmd and str(self.demo.data_dir) in cmd:
            return "redis-server (this demo)"
        if proc.pid in mine:
            if "chromium" in cmd or "chromedriver" in cmd:
                return "chromium (this benchmark)"
            return "benchmark feed / synthetic viewers / raw apps"
        return "other: " + proc.name()

    def _snapshot(self) -> dict[int, tuple[str, float]]:
        web = {p.pid for p in self.demo.web_workers()}
        demo: set[int] = set()
        mine: set[int] = set()
        with contextlib.suppress(psutil.Error):
            master = psutil.Process(self.demo.proc.pid)
            demo = {master.pid} | {c.pid for c in master.children(recursive=True)}
        with contextlib.suppress(psutil.Error):
            mine = {c.pid for c in psutil.Process().children(recursive=True)} - demo
        out = {}
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                group = self._group(proc, web, demo, mine)
                out[proc.pid] = (group, times.user + times.system)
        return out

    def _sample(self) -> None:
        while not self._stop.wait(self.every):
            self.last.update(self._snapshot())

    def start(self) -> None:
        self.before = self._snapshot()
        self.last = dict(self.before)
        self.t0 = time.monotonic()
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def stop(self) -> dict[str, float]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.last.update(self._snapshot())
        span = time.monotonic() - self.t0
        groups: dict[str, float] = {}
        for pid, (group, cpu) in self.last.items():
            used = cpu - self.before.get(pid, (group, 0.0))[1]
            groups[group] = groups.get(group, 0.0) + used / span
        total = sum(groups.values())
        out = {k: round(v, 2) for k, v in sorted(groups.items(), key=lambda kv: -kv[1])
               if v >= 0.01}  # fmt: skip
        out["total (2.0 = both cores of a 2-core machine)"] = round(total, 2)
        return out
