"""What grading one reference solution costs: the numbers the sandbox limits are sized from.

Usage:

    .venv/bin/python benchmarks/grading_footprint.py [worksheet ...]

Executes each master notebook in source/ (the reference solution) as the autograder would
(quick settings, `NBGRADER_EXECUTION=autograde`) and prints, per worksheet, the wall time, the
kernel's CPU seconds, its peak address space (what `prlimit --as` limits) and its peak
resident memory. Compare with `c.SandboxedExecute.limits` in nbgrader_config.py.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from dlcourse.grader.course import Course
from dlcourse.notebooks import execute

COURSE = Course(Path(__file__).resolve().parent.parent)

PROBE = """
import json, resource
_usage = resource.getrusage(resource.RUSAGE_SELF)
_status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
print("FOOTPRINT " + json.dumps({
    "cpu": _usage.ru_utime + _usage.ru_stime,
    "peak_vm_mb": int(_status["VmPeak"].split()[0]) / 1024,
    "peak_rss_mb": int(_status["VmHWM"].split()[0]) / 1024,
}))
"""


def footprint(worksheet: str) -> dict[str, float]:
    (path,) = sorted(COURSE.source(worksheet).glob("*.ipynb"))
    start = time.perf_counter()
    nb = execute(path, env={"NBGRADER_EXECUTION": "autograde"}, extra_cells=(PROBE,))
    wall = time.perf_counter() - start
    for output in nb.cells[-1].outputs:
        for line in output.get("text", "").splitlines():
            if line.startswith("FOOTPRINT "):
                return {"wall": wall, **json.loads(line.removeprefix("FOOTPRINT "))}
    raise RuntimeError(f"{worksheet}: no footprint printed")


def main(worksheets: list[str]) -> int:
    rows = [(ws, footprint(ws)) for ws in worksheets or COURSE.assignments()]
    print("| worksheet | wall time | kernel CPU | peak address space | peak resident |")
    print("|---|---|---|---|---|")
    for ws, f in rows:
        print(
            f"| {ws} | {f['wall']:.0f} s | {f['cpu']:.0f} s | {f['peak_vm_mb']:,.0f} MB "
            f"| {f['peak_rss_mb']:,.0f} MB |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
