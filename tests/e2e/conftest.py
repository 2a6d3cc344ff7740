"""Real processes for browser tests: `cockpit demo` as a user starts it, and headless Chromium."""

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
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
import redis
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from tests.conftest import REPO, wait_until

LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
SCREENSHOTS = REPO / "docs" / "screenshots"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DemoServer:
    def __init__(self, base_url: str, redis_url: str, data_dir: Path, proc: subprocess.Popen):
        self.base_url = base_url
        self.redis_url = redis_url
        self.data_dir = data_dir
        self.proc = proc

    def password(self, user: str) -> str:
        """The demo user's password, as `cockpit demo` printed it for a person to use."""
        log = (self.data_dir / "demo.log").read_text(encoding="utf-8")
        match = re.search(rf"^\s+\w+\s+{re.escape(user)}\s+(\S+)\s+area", log, re.MULTILINE)
        assert match, f"demo printed no sign-in for {user}"
        return match.group(1)

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as resp:  # noqa: S310 (local)
            return resp.status == 200
    except OSError:
        return False


def launch_demo(data_dir: Path, args: list[str], env: dict[str, str],
                timeout: float = 90) -> tuple[subprocess.Popen, str]:  # fmt: skip
    """`cockpit demo ARGS` in its own process group, logging to DATA_DIR/demo.log; returns
    (process, base URL) once it serves and has printed the sign-ins."""
    port = free_port()
    log_path = data_dir / "demo.log"
    with log_path.open("wb") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "cockpit", "demo", "--port", str(port), "--data-dir",
             str(data_dir), *args],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: proc.poll() is not None
                   or (_healthy(base) and "demo-city" in log_path.read_text()),
                   timeout=timeout, what="demo up")  # fmt: skip
        assert proc.poll() is None, log_path.read_text()
    except BaseException:
        stop_demo(proc, data_dir)
        raise
    return proc, base


def demo_env() -> dict[str, str]:
    """The environment without COCKPIT_ settings, but with COCKPIT_REDIS_URL when set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COCKPIT_")}
    if os.environ.get("COCKPIT_REDIS_URL"):
        env["COCKPIT_REDIS_URL"] = os.environ["COCKPIT_REDIS_URL"]
    return env


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    """`cockpit demo` in a fresh data dir, with a slow feed so tests control what changes."""
    data_dir = tmp_path_factory.mktemp("demo-data")
    env = demo_env()
    proc, base = launch_demo(data_dir, ["--rate", "2"], env)
    try:
        redis_url = env.get("COCKPIT_REDIS_URL") or (data_dir / "redis" / "url").read_text().strip()
        yield DemoServer(base, redis_url, data_dir, proc)
    finally:
        stop_demo(proc, data_dir)


def stop_demo(proc: subprocess.Popen, data_dir: Path) -> None:
    """Ctrl-C for the demo's process group; if it is still there after 30 s, SIGKILL, and then
    stop its embedded Redis too (a server of its own session: a killed demo leaves it running)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=30)
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    url_file = data_dir / "redis" / "url"
    if url_file.exists():
        with contextlib.suppress(redis.RedisError, OSError):
            redis.Redis.from_url(url_file.read_text().strip(), socket_timeout=2).shutdown(
                nosave=True
            )


def _chromium_paths() -> tuple[str, str]:
    browser = shutil.which("chromium") or "/usr/bin/chromium"
    driver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not (Path(browser).exists() and Path(driver).exists()):
        pytest.fail(
            "browser tests need Debian's chromium and chromium-driver (.ci/run installs them)"
        )
    return browser, driver


def make_browser(width: int = 1920, height: int = 1080) -> webdriver.Chrome:
    browser, driver = _chromium_paths()
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage", "--hide-scrollbars",
                 f"--window-size={width},{height}", "--force-device-scale-factor=1"):  # fmt: skip
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    chrome = webdriver.Chrome(options=opts, service=Service(driver))
    # the window size includes browser chrome; screenshots need the exact viewport
    chrome.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
    )
    return chrome


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    driver = make_browser()
    yield driver
    driver.quit()


def requested_urls(driver: webdriver.Chrome) -> list[str]:
    """Every URL the page asked for since the last call (from Chrome's network log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
        elif message["method"] == "Network.webSocketCreated":
            urls.append(message["params"]["url"])
    return urls


def outside(urls: list[str]) -> list[str]:
    """The URLs that would leave this machine (data: and blob: never do)."""
    bad = []
    for url in urls:
        parsed = urlparse(url)
        if parsed.scheme in ("data", "blob", "about", "chrome", "devtools"):
            continue
        if parsed.hostname not in LOCAL_HOSTS:
            bad.append(url)
    return bad


def screenshot(driver: webdriver.Chrome, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    driver.save_screenshot(str(path))
    return path


def sign_in(driver: webdriver.Chrome, server: DemoServer, user: str, path: str = "/") -> None:
    """Sign in through the real form, as a person would."""
    from selenium.webdriver.common.by import By

    driver.get(server.base_url + "/login?next=" + path)
    driver.find_element(By.ID, "name").send_keys(user)
    driver.find_element(By.ID, "password").send_keys(server.password(user))
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait_until(lambda: "/login" not in driver.current_url, timeout=15, what=f"{user} signed in")


# Switch the layer control's overlays: on exactly those named (a click on each checkbox to flip).
OVERLAYS_JS = """
const keep = arguments[0];
const names = [];
for (const label of document.querySelectorAll(".leaflet-control-layers-overlays label")) {
  const input = label.querySelector("input");
  const name = label.textContent.trim();
  names.push(name);
  if (input.checked !== keep.includes(name)) { input.click(); }
}
return names;
"""


def show_overlays(driver: webdriver.Chrome, keys: list[str], lang: str = "en") -> list[str]:
    """Leave on only the overlays with these i18n keys; the names the control lists."""
    from cockpit.i18n import t

    return driver.execute_script(OVERLAYS_JS, [t(k, lang) for k in keys])
