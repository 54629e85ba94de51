"""Benchmark: how the lab itself scales with the fleet. Prints numbers; asserts none.

    .venv/bin/python -m tests.benchmarks.lab_scale --hosts 50 200 500

For each size: time to load a generated fleet, to start every listener (HTTP, HTTPS, SMTP, EOP), to stop them, and
the lab process's peak memory so far.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

from tests.lab.fleet import load_fleet
from tests.lab.server import Lab


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, nargs="+", default=[50, 200, 500])
    args = parser.parse_args()
    for hosts in args.hosts:
        started = time.perf_counter()
        fleet = load_fleet(f"generated-{hosts}")
        loaded = time.perf_counter()
        lab = Lab(fleet, ttl_seconds=120).start()
        running = time.perf_counter()
        lab.stop()
        stopped = time.perf_counter()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"generated-{hosts}: load {loaded - started:.2f} s, start {running - loaded:.2f} s, "
            f"stop {stopped - running:.2f} s, peak RSS {peak:.0f} MiB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
