"""Wall time to autograde the whole demo class, serial vs parallel.

Usage (after `make demo`, which leaves a graded demo course in work/demo-course):

    .venv/bin/python benchmarks/autograde_parallel.py [worksheet ...]

Each run re-grades every demo student of the worksheet(s) from the same collected submissions;
the table printed at the end goes into benchmarks/README.md.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

from dlcourse import demo_class, grading
from dlcourse.autograde import autograde_all

COURSE = Path(__file__).resolve().parent.parent / "work" / "demo-course"


def main(worksheets: list[str]) -> int:
    if not (COURSE / "submitted").is_dir():
        print("No demo course yet: run `make demo` first.", file=sys.stderr)
        return 1
    worksheets = worksheets or sorted(p.name for p in (COURSE / "release").iterdir())
    students = list(demo_class.SCENARIOS)
    rows = []
    for worksheet in worksheets:
        release = grading.release_notebooks(COURSE, worksheet)
        for workers in (1, os.cpu_count() or 1):
            start = time.perf_counter()
            outcomes = autograde_all(
                COURSE, worksheet, students, release, workers, progress=lambda _line: None
            )
            seconds = time.perf_counter() - start
            ok = sum(o.ok for o in outcomes)
            rows.append((worksheet, workers, len(students), ok, seconds))
            print(f"{worksheet}: {workers} worker(s): {seconds:.1f} s", flush=True)
    print(f"\nMachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print("| worksheet | workers | students | graded | wall time |")
    print("|---|---|---|---|---|")
    for worksheet, workers, n, ok, seconds in rows:
        print(f"| {worksheet} | {workers} | {n} | {ok} | {seconds:.1f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
