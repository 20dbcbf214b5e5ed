"""Timing shared by the bench scripts (run as scripts: their directory is on sys.path)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def median_ms(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    """The median wall time of `runs` calls of `fn` in milliseconds, and the last call's result."""
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


@dataclass(frozen=True)
class Paired:
    """Medians of a program and its floor timed in turn, and the median of the run-by-run ratios."""

    wall_ms: tuple[float, float]
    cpu_ms: tuple[float, float]
    wall_ratio: float
    cpu_ratio: float
    runs: int


def paired_ms(program: Callable[[], Any], floor: Callable[[], Any], runs: int, warmup: int = 1) -> Paired:
    """Time `program` and `floor` in turn (P F, F P, P F, ...) after `warmup` runs of each.

    On a shared machine the load drifts within seconds: alternating exposes both to the same
    drift, and the median of each pair's ratio is what compares. Wall time counts the time the
    process was kept waiting; CPU time (`time.process_time`, every thread of the process) does
    not, so under load it is the steadier of the two."""
    for _ in range(warmup):
        program()
        floor()
    walls: dict[int, list[float]] = {0: [], 1: []}
    cpus: dict[int, list[float]] = {0: [], 1: []}
    fns = (program, floor)
    for run in range(runs):
        for which in (0, 1) if run % 2 == 0 else (1, 0):
            wall, cpu = time.perf_counter(), time.process_time()
            fns[which]()
            walls[which].append((time.perf_counter() - wall) * 1000)
            cpus[which].append((time.process_time() - cpu) * 1000)
    return Paired(
        wall_ms=(statistics.median(walls[0]), statistics.median(walls[1])),
        cpu_ms=(statistics.median(cpus[0]), statistics.median(cpus[1])),
        wall_ratio=statistics.median(p / f for p, f in zip(walls[0], walls[1], strict=True)),
        cpu_ratio=statistics.median(p / f for p, f in zip(cpus[0], cpus[1], strict=True)),
        runs=runs,
    )
