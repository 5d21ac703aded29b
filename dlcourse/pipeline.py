"""The whole nbgrader cycle for a demo class, with real nbgrader commands, offline.

generate_assignment → release_assignment → (students) fetch_assignment / submit through a
local filesystem exchange → collect → autograde (parallel, repaired copies) →
generate_feedback → export → report.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

from dlcourse import demo_class, grading, report
from dlcourse.autograde import Outcome, autograde_all
from dlcourse.release import assignments, nbgrader, tool_env

COURSE_ID = "dlcourse"


@dataclass
class Result:
    course: Path
    outcomes: dict[str, list[Outcome]]
    grades_csv: Path
    reports: list[Path]
    seconds: float


def _run(course: Path, *args: str, cwd: Path | None = None) -> str:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args],
        cwd=cwd or course,
        env=tool_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout + result.stderr


def release(course: Path, exchange: Path, worksheet: str) -> dict[str, nbformat.NotebookNode]:
    _run(course, "generate_assignment", worksheet, "--force")
    _run(course, "db", "assignment", "add", worksheet, f"--duedate={demo_class.DUE_DATE}")
    _run(course, "release_assignment", worksheet, "--force", f"--Exchange.root={exchange}")
    return grading.release_notebooks(course, worksheet)


def student_turn(
    course: Path,
    exchange: Path,
    worksheet: str,
    student: str,
    release_nb: dict[str, nbformat.NotebookNode],
) -> None:
    """Fetch, work (as the scenario says), submit — as the student would."""
    home = course / "students" / student
    home.mkdir(parents=True, exist_ok=True)
    common = [f"--Exchange.root={exchange}", f"--course={COURSE_ID}"]
    if not (home / worksheet).exists():
        _run(course, "fetch_assignment", worksheet, *common, cwd=home)
    source = grading.source_notebooks(course, worksheet)
    description, build, how = demo_class.SCENARIOS[student]
    for name, nb in release_nb.items():
        ctx = demo_class.Context(worksheet, nb, grading.reference_answers(source[name]))
        work = build(ctx)
        target = home / worksheet / f"{name}.ipynb"
        if "rename" in how:
            target.unlink()
            target = target.with_name(how["rename"].format(name=name))
        if isinstance(work, str):
            target.write_text(work)
        else:
            nbformat.write(work, target)
    _run(course, "submit", worksheet, *common, f"--student={student}", cwd=home)


def simulate_late(course: Path, worksheet: str, student: str) -> None:
    """The demo cannot wait two days: the late student's timestamp is set after the due date."""
    (course / "submitted" / student / worksheet / "timestamp.txt").write_text(
        demo_class.LATE_TIMESTAMP
    )


def new_demo_course(course: Path, repo: Path) -> Path:
    if course.exists():
        shutil.rmtree(course)
    return grading.new_course(course, repo, assignments(repo))


def run(
    repo: Path,
    course: Path,
    worksheets: list[str] | None = None,
    students: list[str] | None = None,
    workers: int | None = None,
) -> Result:
    start = time.perf_counter()
    new_demo_course(course, repo)
    # Always the demo's own exchange, even when DLCOURSE_EXCHANGE names a real one.
    exchange = course / "exchange"
    exchange.mkdir(parents=True)
    worksheets = worksheets or assignments(repo)
    students = students or list(demo_class.SCENARIOS)
    outcomes: dict[str, list[Outcome]] = {}
    reports = []
    for worksheet in worksheets:
        print(f"\n== {worksheet} ==")
        release_nb = release(course, exchange, worksheet)
        for student in students:
            student_turn(course, exchange, worksheet, student, release_nb)
        _run(course, "collect", worksheet, "--update", f"--Exchange.root={exchange}")
        for student in students:
            if demo_class.SCENARIOS[student][2].get("late"):
                simulate_late(course, worksheet, student)
        print(f"collected {len(students)} submissions; autograding")
        outcomes[worksheet] = autograde_all(course, worksheet, students, release_nb, workers)
        _run(course, "generate_feedback", worksheet, "--force")
        for outcome in outcomes[worksheet]:
            report.write_notes(course, worksheet, outcome)
        reports.append(report.assignment_report(course, worksheet, outcomes[worksheet]))
    nbgrader(course, "export", "--to=grades.csv")
    return Result(course, outcomes, course / "grades.csv", reports, time.perf_counter() - start)
