"""Wall time to autograde one class: stock nbgrader vs this course's grader.

Usage:

    .venv/bin/python benchmarks/autograde_parallel.py [worksheet] [--students N]

One class of ordinary submissions (the reference, a blank, half answered, the worksheet's
realistic mistake, repeated up to N students) is collected once and graded from the same
`submitted/` folder:

- stock nbgrader 0.9.6: `nbgrader autograde WS` with nbgrader's own Execute, serial, no
  sandbox, in a course whose config only names the course (what an instructor gets out of
  the box), then generate_feedback;
- ours, 1 worker and 2 workers: `dlcourse.grader.autograde.grade` (reference run, staging,
  sandboxed kernels, verdicts, feedback, report), the reference run timed separately.

The table printed at the end goes into benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from dlcourse.demo import scenarios
from dlcourse.demo.pipeline import new_course
from dlcourse.grader import cells, reference
from dlcourse.grader.autograde import grade
from dlcourse.grader.course import Course
from dlcourse.grader.runner import nbgrader

REPO = Path(__file__).resolve().parent.parent
ORDINARY = ("ada", "ben", "cleo", "dev")
STOCK_CONFIG = 'c = get_config()  # noqa\nc.CourseDirectory.course_id = "dlcourse"\n'


def collect_class(course: Course, worksheet: str, students: int) -> list[str]:
    nbgrader(course.root, "generate_assignment", worksheet, "--force")
    release = course.release_notebooks(worksheet)
    source = course.source_notebooks(worksheet)
    names = []
    for i in range(students):
        scenario = ORDINARY[i % len(ORDINARY)]
        student = f"{scenario}{i:03d}"
        folder = course.submitted(student, worksheet)
        folder.mkdir(parents=True)
        for name, nb in release.items():
            ctx = scenarios.Context(worksheet, nb, cells.reference_answers(source[name]))
            work = scenarios.SCENARIOS[scenario].build(ctx)
            (folder / f"{name}.ipynb").write_text(nbformat.writes(work))
        (folder / "timestamp.txt").write_text("2030-01-01 09:00:00.000000 UTC")
        names.append(student)
    return names


def stock(course: Course, worksheet: str) -> float:
    root = Path(tempfile.mkdtemp(prefix="stock-"))
    for part in ("source", "release", "submitted"):
        shutil.copytree(course.root / part, root / part)
    (root / "nbgrader_config.py").write_text(STOCK_CONFIG)
    nbgrader(root, "generate_assignment", worksheet, "--force")  # its gradebook entries
    start = time.perf_counter()
    nbgrader(root, "autograde", worksheet, "--force")
    nbgrader(root, "generate_feedback", worksheet, "--force")
    seconds = time.perf_counter() - start
    graded = len(list((root / "autograded").glob(f"*/{worksheet}/*.ipynb")))
    print(f"stock nbgrader graded {graded} submissions in {seconds:.0f} s")
    shutil.rmtree(root, ignore_errors=True)
    return seconds


def ours(course: Course, worksheet: str, students: list[str], workers: int) -> float:
    for folder in ("autograded", "feedback", "staged"):
        shutil.rmtree(course.root / folder, ignore_errors=True)
    start = time.perf_counter()
    grade(course, worksheet, students, workers)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("worksheet", nargs="?", default="ws01_tensors")
    parser.add_argument("--students", type=int, default=12)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    course = new_course(work / "course", REPO, [args.worksheet])
    students = collect_class(course, args.worksheet, args.students)
    start = time.perf_counter()
    reference.ensure(course, args.worksheet)
    canary = time.perf_counter() - start
    rows = [("stock nbgrader 0.9.6 (serial, no sandbox)", 1, stock(course, args.worksheet))]
    for workers in (1, 2):
        seconds = ours(course, args.worksheet, students, workers)
        rows.append(("ours (sandboxed, verdicts, feedback, report)", workers, seconds))
    n = len(students)
    print(
        f"\nMachine: {platform.machine()}, {os.cpu_count()} CPUs; {args.worksheet}, {n} "
        f"ordinary submissions; reference run (once per worksheet, cached): {canary:.0f} s\n"
    )
    print("| grader | workers | wall time | per submission |")
    print("|---|---|---|---|")
    for label, workers, seconds in rows:
        print(f"| {label} | {workers} | {seconds:.0f} s | {seconds / n:.1f} s |")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
