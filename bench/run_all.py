"""Run every benchmark, one after another (``--quick`` for the small sizes): about 15 minutes in
full on a 2-core machine, 5 with ``--quick``. Each prints its tables and writes
``bench/results/<name>.json``; ``docs/benchmarks.md`` records the figures.

    python bench/run_all.py [--quick] [--only listing,poll_cost,alert_latency,slash,memory,burst]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = ("listing", "poll_cost", "alert_latency", "slash", "memory", "burst")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer runs")
    parser.add_argument("--only", type=lambda s: s.split(","), default=list(BENCHMARKS))
    args = parser.parse_args()
    unknown = sorted(set(args.only) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    failed = []
    for name in BENCHMARKS:
        if name not in args.only:
            continue
        command = [sys.executable, str(HERE / f"bench_{name}.py"), *(["--quick"] if args.quick else [])]
        print(f"\n===== {name}: {' '.join(command[1:])}", flush=True)
        started = time.monotonic()
        status = subprocess.run(command, check=False).returncode
        print(f"===== {name}: exit {status} after {time.monotonic() - started:.0f} s", flush=True)
        if status:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
