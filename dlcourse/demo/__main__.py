"""`make demo`: check the set-up, run a walkthrough headless, then grade the demo class."""

from __future__ import annotations

import os
import sys
import time

from dlcourse import doctor
from dlcourse.demo import pipeline
from dlcourse.grader.course import Course
from dlcourse.notebooks import execute, walkthroughs, write


def run() -> int:
    repo = Course.at().root
    work = repo / "work"
    print("== Checking installation, devices and data ==")
    if doctor.run():
        print("Fix the problems above, then run `make demo` again.")
        return 1
    notebooks = walkthroughs(repo)
    if not notebooks:
        print("No walkthrough notebooks yet.")
        return 1
    first = notebooks[0]
    print(f"\n== Executing {first.relative_to(repo)} headless (quick mode) ==")
    (work / "walkthroughs").mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    out = work / "walkthroughs" / first.name
    write(execute(first), out)
    print(f"done in {time.perf_counter() - start:.1f} s; executed copy: {out}")

    selected = os.environ.get("WORKSHEETS", "").split() or None
    print(
        "\n== Grading the demo class through nbgrader (release, fetch, submit, collect, "
        "autograde, feedback, export) =="
    )
    result = pipeline.run(repo, work / "demo-course", worksheets=selected)
    failed = [o for outs in result.outcomes.values() for o in outs if not o.ok]
    print(f"\nDemo class graded in {result.seconds:.0f} s.")
    print(f"  grades (CSV):  {result.grades_csv}")
    print(f"  feedback:      {result.course.feedback()}/<student>/<worksheet>/")
    for path in result.reports:
        print(f"  report:        {path}")
    if failed:
        print(f"{len(failed)} submission(s) could not be graded: see the reports.")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run())
