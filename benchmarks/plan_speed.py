"""How long planning takes: ``build_plan`` for every paper at each scale, and ``ltbench plan --all`` as a
user runs it (process start included). Prints wall and CPU seconds, median of N repeats.

    python benchmarks/plan_speed.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from ltbench.plan import build_plan

    print(f"{'what':<34} {'wall s (median)':>16} {'cpu s (median)':>15}")
    for scale in ("smoke", "paper"):
        wall, cpu = [], []
        for _ in range(args.repeats):
            w0, c0 = time.perf_counter(), time.process_time()
            plan = build_plan(scale=scale)
            wall.append(time.perf_counter() - w0)
            cpu.append(time.process_time() - c0)
        print(f"{f'build_plan(all papers, {scale})':<34} {statistics.median(wall):>16.3f} {statistics.median(cpu):>15.3f}"
              f"   ({len(plan.rows)} rows, {len(plan.runs)} runs)")
    wall = []
    for _ in range(args.repeats):
        w0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ltbench", "plan", "--all", "--format", "json"], check=True, capture_output=True)
        wall.append(time.perf_counter() - w0)
    print(f"{'ltbench plan --all (process)':<34} {statistics.median(wall):>16.3f} {'':>15}")


if __name__ == "__main__":
    main()
