"""Wall time to autograde the whole demo class: serial vs parallel, sandbox on vs off.

Usage (after `make demo`, which leaves a graded demo course in work/demo-course):

    .venv/bin/python benchmarks/autograde_parallel.py [worksheet ...]

Each run re-grades every demo student of the worksheet(s) from the same collected submissions,
with 1 worker and with one worker per CPU, each with the sandbox on and off
(`DLCOURSE_SANDBOX=0`). The table printed at the end goes into benchmarks/README.md.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

from dlcourse import settings
from dlcourse.demo import scenarios
from dlcourse.grader import sandbox
from dlcourse.grader.course import Course
from dlcourse.grader.driver import autograde_all

COURSE = Course(Path(__file__).resolve().parent.parent / "work" / "demo-course")


def grade(worksheet: str, workers: int, sandboxed: bool) -> tuple[float, int]:
    os.environ[sandbox.SANDBOX_ENV] = "1" if sandboxed else "0"
    os.environ[settings.ALLOW_UNSANDBOXED] = "0" if sandboxed else "1"
    sandbox.protections.cache_clear()
    release = COURSE.release_notebooks(worksheet)
    students = list(scenarios.SCENARIOS)
    start = time.perf_counter()
    outcomes = autograde_all(COURSE, worksheet, students, release, workers, lambda _: None)
    return time.perf_counter() - start, sum(o.ok for o in outcomes)


def main(worksheets: list[str]) -> int:
    if not COURSE.submitted().is_dir():
        print("No demo course yet: run `make demo` first.", file=sys.stderr)
        return 1
    worksheets = worksheets or sorted(p.name for p in COURSE.release().iterdir())
    print(sandbox.protections().summary())
    rows = []
    for worksheet in worksheets:
        for workers in (1, os.cpu_count() or 1):
            for sandboxed in (True, False):
                seconds, ok = grade(worksheet, workers, sandboxed)
                rows.append((worksheet, workers, sandboxed, ok, seconds))
                where = "sandbox on" if sandboxed else "sandbox off"
                print(f"{worksheet}: {workers} worker(s), {where}: {seconds:.1f} s", flush=True)
    os.environ.pop(sandbox.SANDBOX_ENV)
    os.environ.pop(settings.ALLOW_UNSANDBOXED)
    n = len(scenarios.SCENARIOS)
    print(f"\nMachine: {platform.machine()}, {os.cpu_count()} CPUs, {n} demo students\n")
    print("| worksheet | workers | sandbox | graded | wall time | sandbox overhead |")
    print("|---|---|---|---|---|---|")
    times = {(w, k, s): t for w, k, s, _, t in rows}
    for worksheet, workers, sandboxed, ok, seconds in rows:
        overhead = ""
        if sandboxed:
            bare = times[(worksheet, workers, False)]
            overhead = f"{(seconds - bare) / bare:+.1%}"
        where = "on" if sandboxed else "off"
        print(f"| {worksheet} | {workers} | {where} | {ok}/{n} | {seconds:.1f} s | {overhead} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
