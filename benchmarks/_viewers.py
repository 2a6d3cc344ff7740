"""Synthetic wall viewers: each signs in with the wall token (its own session cookie) and
sends the exact Dash callback requests a real Chromium wall sent, with its own State values
taken from its previous responses (live-store, fleet-store, the heat URL), so the server does
the same work for it as for a browser. Nothing is drawn.

- With a push stream (as the page holds one), the viewer reads the stream's events: the grid
  values arrive on it, and a ``view`` event whose entry for a part changed (alerts, fleet, the
  slow parts) makes it send that part's callbacks, with the version as the page does.
- Without one (``--push poll``, or the stream refused), it replays every live part's callback
  once a second with its own tick number, as the page's interval does.

The viewers run in a child process (threads, one keep-alive HTTP connection each), so their
client-side work never delays the main process's marker timing.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing as mp
import random
import threading
import time
from http.cookies import SimpleCookie
from queue import Empty, Queue
from urllib.parse import urlparse

import numpy as np
from _browser import TICK_IDS

USER_AGENT = "cockpit-bench-viewer/1"


class Viewer:
    """One signed-in wall viewer replaying tick callbacks."""

    def __init__(self, base_url: str, token: str, templates: dict[str, str]) -> None:
        url = urlparse(base_url)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.templates = templates
        self.cookies: dict[str, str] = {}
        self.state: dict[tuple[str, str], object] = {}
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        self.endpoint = ""
        self.heat_url = ""  # the heat overlay PNG last fetched
        self._get(f"/wall/{token}")  # sets the session cookie, redirects to /wall
        if "cockpit_session" not in self.cookies:
            raise RuntimeError("the wall token did not sign the viewer in")
        self._get("/_dash-layout")  # what a page load costs the server once

    def _request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if body is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (0, 1):
            try:
                self.conn.request(method, path, body=body, headers=headers)
                resp = self.conn.getresponse()
                data = resp.read()
                break
            except (http.client.HTTPException, OSError):
                self.conn.close()  # a keep-alive the server closed: reconnect once
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                if attempt:
                    raise
        for header in resp.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        return resp.status, data

    def _get(self, path: str) -> int:
        return self._request("GET", path)[0]

    def call(self, outputs: str, tick: int | str, remember: bool = True) -> tuple[int, int, float]:
        """One callback request as the page would send it now: (status, bytes, ms); ``tick`` is
        the tick number or the pushed version that drives it. With ``remember`` false the
        viewer keeps its State values (it stays a tick behind). When the answer carries a new
        heat overlay URL, the PNG is fetched as the browser would (its bytes are counted;
        ``ms`` is the callback's alone)."""
        body = json.loads(self.templates[outputs])
        for item in body.get("inputs", []):
            if isinstance(item, dict) and item.get("id") in TICK_IDS:
                item["value"] = tick
        for item in body.get("state", []):
            key = (item.get("id"), item.get("property"))
            if key in self.state:
                item["value"] = self.state[key]
        started = time.perf_counter()
        status, data = self._request("POST", "/_dash-update-component",
                                     json.dumps(body).encode())  # fmt: skip
        ms = (time.perf_counter() - started) * 1000
        size = len(data)
        if status == 200:
            for comp, props in json.loads(data).get("response", {}).items():
                for prop, value in props.items():
                    if (prop == "url" and isinstance(value, str) and value.startswith("/heat/")
                            and value != self.heat_url):  # fmt: skip
                        # a new heat overlay URL: a browser now fetches the PNG, so does this
                        self.heat_url = value
                        size += len(self._request("GET", value)[1])
                    if remember and not (isinstance(value, dict) and
                                         "__dash_patch_update" in value):  # fmt: skip
                        self.state[(comp, prop)] = value
        return status, size, ms


class PushReader:
    """A viewer's grid push stream, as its page holds it (a thread reading events until
    ``end``): counts events and bytes, notes when each grid event arrived, puts each changed
    view part on ``parts`` (part, version, arrival); reconnects when the server ends it."""

    def __init__(self, viewer: Viewer, query: str, end: float) -> None:
        self.viewer, self.query, self.end = viewer, query, end
        self.events = self.bytes = self.refused = 0
        self.grid_times: list[float] = []
        self.parts: Queue = Queue()
        self.answered = threading.Event()  # the server answered: a stream, or refused
        self._view: dict[str, object] = {}
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _event(self, block: bytes) -> None:
        kind, data = "", ""
        for line in block.decode(errors="replace").split("\n"):
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        now = time.monotonic()
        if kind == "grids":
            self.events += 1
            self.grid_times.append(now)
        elif kind == "view" and data:
            for part, version in json.loads(data).get("v", {}).items():
                if self._view.get(part) != version:
                    self._view[part] = version
                    self.parts.put((part, version, now))

    def _read(self) -> None:
        url = urlparse(f"http://{self.viewer.host}:{self.viewer.port}")
        cookie = "; ".join(f"{k}={v}" for k, v in self.viewer.cookies.items())
        while time.monotonic() < self.end:
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
            try:
                conn.request("GET", "/push/grids" + self.query,
                             headers={"User-Agent": USER_AGENT, "Cookie": cookie,
                                      "Accept": "text/event-stream"})  # fmt: skip
                resp = conn.getresponse()
                if resp.status != 200:
                    self.refused += 1
                    self.answered.set()
                    return  # a page refused a stream polls instead (its replayed callbacks)
                self.answered.set()
                buffer = b""
                while time.monotonic() < self.end:
                    chunk = resp.read1(65536)
                    if not chunk:
                        break
                    self.bytes += len(chunk)
                    buffer += chunk
                    while b"\n\n" in buffer:
                        block, buffer = buffer.split(b"\n\n", 1)
                        self._event(block)
            except (OSError, http.client.HTTPException):
                time.sleep(1)
            finally:
                conn.close()


def _short(outputs: str) -> str:
    return outputs.strip(".").split(".")[0]


def _trigger(template: str) -> str | None:
    for item in json.loads(template).get("inputs", []):
        if isinstance(item, dict) and item.get("id") in TICK_IDS:
            return item["id"]
    return None


def _run_viewers(base_url: str, token: str, templates: dict[str, str], n: int, seconds: float,
                 interval: float, queue, ready,
                 push_query: str | None) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    """``n`` viewer threads ticking every ``interval`` s for ``seconds``, each with its push
    stream when ``push_query`` is set (the page's own did); put a summary."""
    latencies: dict[str, list[float]] = {_short(o): [] for o in templates}
    lock = threading.Lock()
    stats = {"ticks_due": 0, "ticks_done": 0, "ticks_late": 0, "ticks_skipped": 0,
             "errors": 0, "bytes": 0, "sign_in_failures": 0, "push_events": 0,
             "push_bytes": 0, "push_refused": 0, "view_changes": 0,
             "seconds_updated": 0}  # fmt: skip
    signed_in = threading.Barrier(n + 1)
    go = threading.Event()
    start_at: list[float] = []

    by_part: dict[str, list[str]] = {}  # view part -> the callbacks its version drives
    for outputs, template in templates.items():
        trigger = _trigger(template) or ""
        if trigger.startswith("tick-"):
            by_part.setdefault(trigger[len("tick-"):], []).append(outputs)

    def call(viewer: Viewer, outputs: str, tick: int | str, counts: dict, local: dict,
             since: float | None = None) -> None:  # fmt: skip
        try:
            status, size, ms = viewer.call(outputs, tick)
        except (OSError, http.client.HTTPException, ValueError):
            counts["errors"] += 1
            return
        if status not in (200, 204):
            counts["errors"] += 1
        # pushed: from the view event's arrival to the answer (the part is current again)
        local[_short(outputs)].append(ms if since is None else
                                      (time.monotonic() - since) * 1000)  # fmt: skip
        counts["bytes"] += size

    def polled(viewer: Viewer, begin: float, end: float, counts: dict, local: dict,
               updated: set[int]) -> None:  # fmt: skip
        tick = 0
        while True:
            due = begin + tick * interval
            if due >= end:
                break
            now = time.monotonic()
            if now < due:
                time.sleep(due - now)
            elif now > due + interval:  # a whole interval behind: skip, as a slow page would
                behind = int((now - due) // interval)
                counts["ticks_due"] += behind
                counts["ticks_skipped"] += behind
                tick += behind
                continue
            tick += 1
            counts["ticks_due"] += 1
            for outputs in templates:
                call(viewer, outputs, tick, counts, local)
            counts["ticks_done"] += 1
            updated.add(int(time.monotonic() - start_at[0]))
            if time.monotonic() > due + interval:
                counts["ticks_late"] += 1

    def pushed(viewer: Viewer, reader: PushReader, end: float, counts: dict,
               local: dict) -> None:  # fmt: skip
        while (left := end - time.monotonic()) > 0:
            try:
                part, version, since = reader.parts.get(timeout=left)
            except Empty:
                break
            counts["view_changes"] += 1
            for outputs in by_part.get(part, []):
                call(viewer, outputs, version, counts, local, since)

    def viewer_thread(k: int) -> None:
        rng = random.Random(k)
        try:
            viewer = Viewer(base_url, token, templates)
        except Exception:
            with lock:
                stats["sign_in_failures"] += 1
            signed_in.wait()
            return
        signed_in.wait()
        go.wait()
        begin = start_at[0] + rng.uniform(0, interval)  # a random phase, like real screens
        end = start_at[0] + seconds
        local: dict[str, list[float]] = {name: [] for name in latencies}
        counts = dict.fromkeys(stats, 0)
        updated: set[int] = set()  # seconds of the run in which this viewer got an update
        reader = PushReader(viewer, push_query, end) if push_query is not None else None
        if reader is not None and reader.answered.wait(timeout=30) and not reader.refused:
            pushed(viewer, reader, end, counts, local)
        else:
            polled(viewer, begin, end, counts, local, updated)  # as a page without a stream
        if reader is not None:
            reader.thread.join(timeout=35)
            counts["push_events"] += reader.events
            counts["push_bytes"] += reader.bytes
            counts["push_refused"] += reader.refused
            updated.update(int(t - start_at[0]) for t in reader.grid_times)
        counts["seconds_updated"] = len([s for s in updated if 0 <= s < seconds])
        with lock:
            for name, values in local.items():
                latencies[name].extend(values)
            for key, value in counts.items():
                stats[key] += value

    threads = [threading.Thread(target=viewer_thread, args=(k,), daemon=True) for k in range(n)]
    for t in threads:
        t.start()
    signed_in.wait()
    start_at.append(time.monotonic())
    go.set()
    ready.set()
    for t in threads:
        t.join()
    queue.put({"latencies": latencies, "stats": stats})


def _pct(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p95": None, "max": None}
    arr = np.asarray(values)
    p50, p95 = (round(float(np.percentile(arr, q)), 1) for q in (50, 95))
    return {"n": len(values), "p50": p50, "p95": p95, "max": round(float(arr.max()), 1)}


class SyntheticViewers:
    """``n`` synthetic viewers at one update per ``interval`` s, in a child process."""

    def __init__(self, base_url: str, token: str, templates: dict[str, str], n: int,
                 seconds: float, interval: float = 1.0,
                 push_query: str | None = None) -> None:  # fmt: skip
        ctx = mp.get_context("spawn")
        self.queue = ctx.Queue()
        self.ready = ctx.Event()
        self.n, self.seconds, self.interval = n, seconds, interval
        self.process = ctx.Process(
            target=_run_viewers,
            args=(base_url, token, templates, n, seconds, interval, self.queue, self.ready,
                  push_query),
            daemon=True,
        )  # fmt: skip
        self.result: dict | None = None

    def __enter__(self) -> SyntheticViewers:
        self.process.start()
        if not self.ready.wait(timeout=600):  # every viewer signed in and fetched its layout
            raise TimeoutError("synthetic viewers did not sign in")
        return self

    def summary(self) -> dict:
        if self.result is None:
            self.result = self.queue.get(timeout=self.seconds + 300)
            self.process.join(timeout=30)
        stats = self.result["stats"]
        requests = sum(len(v) for v in self.result["latencies"].values())
        return {
            "synthetic_viewers": self.n,
            "interval_s": self.interval,
            "callback_ms": {k: _pct(v) for k, v in self.result["latencies"].items()},
            "requests": requests,
            "requests_per_s": round(requests / self.seconds, 1),
            # the goal's figure: the share of (viewer, second) pairs with an update in that
            # second (a pushed grid event, or a poll tick answered); 1.0 = every second
            "updates_per_viewer_per_s":
                round(stats["seconds_updated"] / max(1, self.n) / int(self.seconds), 3),
            "polled_ticks_per_viewer_per_s":
                round(stats["ticks_done"] / max(1, self.n) / self.seconds, 3),
            "view_changes_per_viewer_per_s":
                round(stats["view_changes"] / max(1, self.n) / self.seconds, 3),
            "callbacks_per_viewer_per_s":
                round(requests / max(1, self.n) / self.seconds, 3),
            "ticks_late_share": round(stats["ticks_late"] / max(1, stats["ticks_done"]), 3),
            "ticks_skipped": stats["ticks_skipped"],
            "errors": stats["errors"],
            "sign_in_failures": stats["sign_in_failures"],
            "received_bytes_per_viewer_per_s":
                round(stats["bytes"] / max(1, self.n) / self.seconds, 0),
            "push_events_per_viewer_per_s":
                round(stats["push_events"] / max(1, self.n) / self.seconds, 3),
            "push_bytes_per_viewer_per_s":
                round(stats["push_bytes"] / max(1, self.n) / self.seconds, 0),
            "push_streams_refused": stats["push_refused"],
        }  # fmt: skip

    def __exit__(self, *exc: object) -> None:
        if self.result is None and self.process.is_alive():
            try:
                self.summary()
            except Exception:
                self.process.terminate()


def closed_loop(clients: list, request, seconds: float) -> float:  # type: ignore[no-untyped-def]
    """Requests/s reached by one thread per client calling ``request(client)`` (which returns
    how many requests it made) back to back for ``seconds``."""
    done = [0] * len(clients)
    start = threading.Barrier(len(clients) + 1)
    stop: list[float] = []

    def run(k: int) -> None:
        start.wait()
        while time.monotonic() < stop[0]:
            done[k] += request(clients[k])

    pool = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(len(clients))]
    for t in pool:
        t.start()
    t0 = time.monotonic()
    stop.append(t0 + seconds)
    start.wait()
    for t in pool:
        t.join()
    return round(sum(done) / (time.monotonic() - t0), 1)


class Hello:
    """A keep-alive client of the raw hello app."""

    def __init__(self, base_url: str) -> None:
        url = urlparse(base_url)
        self.conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)

    def __call__(self) -> int:
        self.conn.request("GET", "/", headers={"User-Agent": USER_AGENT})
        self.conn.getresponse().read()
        return 1
