"""The command line: --help everywhere, grid import end to end, clear errors."""

from __future__ import annotations

import subprocess
import sys

import geopandas as gpd
import pytest
import redis

from cockpit.areastore import load_geography

COMMANDS = [[], ["demo"], ["serve"], ["worker"], ["simulate"], ["grids"], ["grids", "import"],
            ["grids", "demo"], ["status"], ["bench"], ["bench", "ingest"], ["users"],
            ["users", "add"], ["wall-token"], ["wall-token", "create"], ["reference"],
            ["reference", "import"], ["reference", "export"], ["reference", "demo"]]  # fmt: skip


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cockpit", *args], capture_output=True, text=True, timeout=120,
        env=env,
    )  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "cockpit")
def test_cli001_every_command_has_help(command):
    done = run(*command, "--help")
    assert done.returncode == 0, done.stderr
    assert "usage: cockpit" in done.stdout


def _env(redis_url: str) -> dict:
    import os

    return {**os.environ, "COCKPIT_REDIS_URL": redis_url}


def test_cli002_import_geojson_stores_grids(tmp_path, r, redis_url, demo_areas):
    grids = demo_areas.grids.reset_index()[["id", "name_zh", "parent", "geometry"]].head(40)
    path = tmp_path / "grids.geojson"
    grids.to_file(path, driver="GeoJSON")
    done = run("grids", "import", str(path), env=_env(redis_url))
    assert done.returncode == 0, done.stderr
    assert "Read" in done.stdout and "Stored as grid version" in done.stdout
    geo = load_geography(redis.Redis.from_url(redis_url))
    assert sorted(geo.grid_ids) == sorted(grids["id"])


def test_cli003_import_errors_name_the_problem_and_exit_nonzero(tmp_path, r, redis_url):
    done = run("grids", "import", str(tmp_path / "nope.geojson"), env=_env(redis_url))
    assert done.returncode == 2
    assert "nope.geojson" in done.stderr and "Traceback" not in done.stderr

    frame = gpd.GeoDataFrame({"code_x": ["a"]}, geometry=gpd.points_from_xy([120.2], [31.6]),
                             crs="EPSG:4326")  # fmt: skip
    bad = tmp_path / "points.geojson"
    frame.to_file(bad, driver="GeoJSON")
    done = run("grids", "import", str(bad), "--id-col", "code_x", env=_env(redis_url))
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and done.stderr.strip().count("\n") == 0


def test_cli004_wrong_setting_stops_with_one_line():
    import os

    env = {**os.environ, "COCKPIT_PORT": "abc"}
    done = run("status", env=env)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "cockpit: setting error: COCKPIT_PORT='abc' is not a whole number; use one from 1 to 65535"
    )


def test_cli005_demo_can_start_without_its_simulator():
    done = run("demo", "--help")
    assert done.returncode == 0, done.stderr
    assert "--no-simulator" in done.stdout  # browser tests start a quiet demo with it


def _hold_a_lot(path) -> None:  # noqa: ANN001 - a child's target
    import os

    block = bytearray(200 * 1024 * 1024)
    block[:: 4096] = b"x" * len(block[:: 4096])  # touch every page: resident, not just reserved
    path.write_text(str(os.getpid()))


def _fail() -> None:
    raise RuntimeError("the demo setup failed")


def _rss_mb() -> float:
    import re
    from pathlib import Path

    text = Path("/proc/self/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB", text, re.MULTILINE).group(1)) / 1024


def test_cli006_demo_setup_memory_stays_out_of_the_web_processes(tmp_path):
    """`cockpit demo` builds the city in a child, so the gunicorn master it then becomes (and
    every web process it forks) does not carry that heap."""
    import os

    from cockpit.cli import run_in_child

    before = _rss_mb()
    assert run_in_child(_hold_a_lot, tmp_path / "pid") == 0
    assert int((tmp_path / "pid").read_text()) != os.getpid()
    assert _rss_mb() - before < 50  # the child's 200 MB went with it
    assert run_in_child(_fail) != 0  # a failed setup stops the demo with an error code


FREED_BLOCKS = """
import ctypes, re
from pathlib import Path

from cockpit.cli import tune_malloc

def rss_mb():
    text = Path("/proc/self/status").read_text()
    return int(re.search(r"^VmRSS:\\s+(\\d+) kB", text, re.MULTILINE).group(1)) / 1024

if TUNE:
    tune_malloc()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
size = 8 << 20
for _ in range(3):
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)
    libc.malloc(1000)  # something after it on the heap, as in a busy process
    before = rss_mb()
    libc.free(block)
    print(round(before - rss_mb(), 1))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_cli007_web_processes_give_freed_large_blocks_back():
    """With tune_malloc (set before gunicorn forks), every freed 8 MB block leaves the RSS; with
    glibc's defaults only the first does (its mmap threshold then rises to 8 MB)."""
    def given_back(tune: bool) -> list[float]:
        done = subprocess.run([sys.executable, "-c", f"TUNE = {tune}\n" + FREED_BLOCKS],
                              capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
        return [float(v) for v in done.stdout.split()]

    assert all(mb >= 7 for mb in given_back(True))
    assert all(mb < 1 for mb in given_back(False)[1:])  # the default the tuning is there for


def test_cli008_gunicorn_run_directly_gets_the_cockpits_hooks():
    """`gunicorn -c python:cockpit.gunicorn_conf` (README, deployment) sets the hook that warms a
    web process and ends its push streams on a stop signal."""
    from gunicorn.app.base import Application

    from cockpit.gunicorn_conf import post_worker_init

    class Probe(Application):
        def init(self, parser, opts, args):  # type: ignore[no-untyped-def]
            return None

        def load(self):  # type: ignore[no-untyped-def]
            return None

    app = Probe.__new__(Probe)
    app.usage, app.prog, app.callable = None, None, None
    app.do_load_config = lambda: None
    app.load_default_config()
    app.load_config_from_module_name_or_filename("python:cockpit.gunicorn_conf")
    assert app.cfg.post_worker_init is post_worker_init
