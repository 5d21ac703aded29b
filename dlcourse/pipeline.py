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
        outcomes[worksheet], path = grade(course, worksheet, students, workers)
        reports.append(path)
    return Result(course, outcomes, export(course), reports, time.perf_counter() - start)


def grade(
    course: Path, worksheet: str, students: list[str], workers: int | None = None
) -> tuple[list[Outcome], Path]:
    """Collected submissions -> autograde (parallel, on repaired copies) -> feedback with
    grading notes -> the worksheet's report."""
    release_nb = grading.release_notebooks(course, worksheet)
    outcomes = autograde_all(course, worksheet, students, release_nb, workers)
    _run(course, "generate_feedback", worksheet, "--force")
    for outcome in outcomes:
        report.write_notes(course, worksheet, outcome)
    return outcomes, report.assignment_report(course, worksheet, outcomes)


def export(course: Path) -> Path:
    nbgrader(course, "export", "--to=grades.csv")
    return course / "grades.csv"


def collected_students(course: Path, worksheet: str) -> list[str]:
    submitted = course / "submitted"
    if not submitted.is_dir():
        return []
    return sorted(p.name for p in submitted.iterdir() if (p / worksheet).is_dir())


def autograde_command(course_dir: str, worksheet: str, workers: int | None) -> int:
    """`python -m dlcourse autograde WORKSHEET`: the grading half of the pipeline for a real
    class, after `nbgrader collect`."""
    course = Path(course_dir).resolve()
    if not (course / "nbgrader_config.py").is_file():
        print(f"{course} is not a course root (no nbgrader_config.py); use --course DIR")
        return 2
    if not (course / "release" / worksheet).is_dir():
        print(f"{worksheet} has no release/ yet: run `nbgrader generate_assignment {worksheet}`")
        return 2
    students = collected_students(course, worksheet)
    if not students:
        print(
            f"No collected submissions of {worksheet} in {course / 'submitted'}: run "
            f"`nbgrader collect {worksheet}` first."
        )
        return 2
    outcomes, path = grade(course, worksheet, students, workers)
    print(f"grades (CSV): {export(course)}")
    print(f"feedback:     {course / 'feedback'}/<student>/{worksheet}/")
    print(f"report:       {path}")
    return 0 if all(o.ok for o in outcomes) else 1
