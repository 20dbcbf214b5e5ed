"""Time the program's evaluation under the mock engine, per stack file and mode.

Prints the median of several runs and the resource count. Usage:
    .venv/bin/python bench/eval_program.py [--runs N] [--stack NAME ...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.harness.mock_engine import run_program, stack_files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--stack", action="append", help="stack name (default: every Pulumi.<stack>.yaml)")
    args = parser.parse_args()
    stacks = args.stack or stack_files()
    medians: dict[tuple[str, str], float] = {}
    print(f"{'stack':<10} {'mode':<8} {'resources':>9} {'median ms':>10} {'min ms':>8} {'runs':>5}")
    for stack in stacks:
        for preview in (True, False):
            times = []
            count = 0
            for _ in range(args.runs):
                start = time.perf_counter()
                result = run_program(stack, preview)
                times.append((time.perf_counter() - start) * 1000)
                count = len(result.resources)
            mode = "preview" if preview else "update"
            medians[(stack, mode)] = statistics.median(times)
            print(
                f"{stack:<10} {mode:<8} {count:>9} {statistics.median(times):>10.1f} {min(times):>8.1f} {args.runs:>5}"
            )
    if ("prod", "update") in medians:
        print(
            f"prod program evaluation: {medians[('prod', 'update')]:.1f} ms (update), "
            f"{medians[('prod', 'preview')]:.1f} ms (preview), median of {args.runs}"
        )


if __name__ == "__main__":
    main()
