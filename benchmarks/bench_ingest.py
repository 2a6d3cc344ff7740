"""Worker ingest benchmark; same as `cockpit bench ingest` (prints JSON). See BENCHMARKS.md."""

import argparse

from cockpit import bench

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--grids", type=int, nargs="+", default=[557, 50_000])
parser.add_argument("--events", type=int, default=200_000)
parser.add_argument("--batch", type=int, default=20_000)
raise SystemExit(bench.main(parser.parse_args()))
