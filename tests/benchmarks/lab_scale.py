"""Benchmark: how the lab itself scales with the fleet. Prints numbers; asserts none.

    .venv/bin/python -m tests.benchmarks.lab_scale --hosts 50 200 500

For each size: time to load a generated fleet, to start every listener (HTTP, HTTPS, SMTP, EOP), the CPU the lab
takes while no client talks to it (its threads, its queue retries), the time to stop, and the peak memory so far.
"""

from __future__ import annotations

import argparse
import resource
import sys
import threading
import time

from tests.lab.fleet import load_fleet
from tests.lab.server import Lab

IDLE_SECONDS = 5.0


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
        # The first retries deliver what the fleet file queued; after them, no one talks to the lab.
        time.sleep(3 * fleet.settings.queue_retry_seconds)
        cpu_before, wall_before = time.process_time(), time.monotonic()
        time.sleep(IDLE_SECONDS)
        idle = (time.process_time() - cpu_before) / (time.monotonic() - wall_before)
        threads = threading.active_count()
        stopping = time.perf_counter()
        lab.stop()
        stopped = time.perf_counter()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"generated-{hosts}: load {loaded - started:.2f} s, start {running - loaded:.2f} s, "
            f"idle {idle * 100:.1f} % of a core with {threads} threads, stop {stopped - stopping:.2f} s, "
            f"peak RSS {peak:.0f} MiB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
