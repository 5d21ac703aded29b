"""The whole nbgrader cycle for the demo class, with real nbgrader commands, offline.

generate_assignment → release_assignment → (students) fetch_assignment / submit through a
local filesystem exchange → collect → the course's autograde (parallel, sandboxed, repaired
copies, feedback, notes, report) → export.
"""

from __future__ import annotations

import os
import shutil
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nbformat

from dlcourse.demo import scenarios
from dlcourse.grader import autograde
from dlcourse.grader.cells import reference_answers
from dlcourse.grader.course import Course
from dlcourse.grader.driver import Outcome
from dlcourse.grader.runner import nbgrader


@dataclass
class Result:
    course: Course
    outcomes: dict[str, list[Outcome]]
    grades_csv: Path
    reports: list[Path]
    seconds: float


def new_course(root: Path, template: Path, worksheets: list[str]) -> Course:
    """A throwaway course directory with the template's config and the given master copies."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(template / "nbgrader_config.py", root / "nbgrader_config.py")
    for name in worksheets:
        shutil.copytree(template / "source" / name, root / "source" / name, dirs_exist_ok=True)
    return Course(root.resolve())


def release(course: Course, exchange: Path, worksheet: str) -> dict[str, nbformat.NotebookNode]:
    nbgrader(course.root, "generate_assignment", worksheet, "--force")
    nbgrader(course.root, "db", "assignment", "add", worksheet, f"--duedate={scenarios.DUE_DATE}")
    nbgrader(course.root, "release_assignment", worksheet, "--force", f"--Exchange.root={exchange}")
    return course.release_notebooks(worksheet)


def student_home(course: Course, student: str) -> Path:
    return course.root / "students" / student


def exchange_args(course: Course, exchange: Path, student: str) -> list[str]:
    """The demo's exchange, and each student's own nbgrader cache (as in their own home)."""
    cache = student_home(course, student) / ".nbgrader_cache"
    return [
        f"--Exchange.root={exchange}",
        f"--Exchange.cache={cache}",
        f"--course={course.course_id}",
    ]


def fetch(course: Course, exchange: Path, worksheet: str, student: str) -> None:
    home = student_home(course, student)
    home.mkdir(parents=True, exist_ok=True)
    if not (home / worksheet).exists():
        args = exchange_args(course, exchange, student)
        nbgrader(course.root, "fetch_assignment", worksheet, *args, cwd=home)


def work(
    course: Course, worksheet: str, student: str, release_nb: dict[str, nbformat.NotebookNode]
) -> None:
    """Answer the fetched worksheet as the student's scenario says."""
    home = student_home(course, student)
    source = course.source_notebooks(worksheet)
    scenario = scenarios.SCENARIOS[student]
    for name, nb in release_nb.items():
        ctx = scenarios.Context(worksheet, nb, reference_answers(source[name]))
        answered = scenario.build(ctx)
        target = home / worksheet / f"{name}.ipynb"
        if scenario.rename:
            target.unlink()
            target = target.with_name(scenario.rename.format(name=name))
        if isinstance(answered, str):
            target.write_text(answered)
        else:
            with warnings.catch_warnings():  # some students' notebooks are broken on purpose
                warnings.simplefilter("ignore")
                nbformat.write(answered, target)


def submit(course: Course, exchange: Path, worksheet: str, student: str) -> None:
    args = exchange_args(course, exchange, student)
    nbgrader(
        course.root, "submit", worksheet, *args, f"--student={student}",
        cwd=student_home(course, student),
    )  # fmt: skip


def class_works(
    course: Course,
    exchange: Path,
    worksheet: str,
    students: list[str],
    release_nb: dict[str, nbformat.NotebookNode],
    workers: int,
) -> None:
    """Every student fetches, works and submits. Students act at the same time, so their
    nbgrader commands run concurrently; the answers are written one after another (warning
    filters are process-wide)."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda s: fetch(course, exchange, worksheet, s), students))
        for student in students:
            work(course, worksheet, student, release_nb)
        list(pool.map(lambda s: submit(course, exchange, worksheet, s), students))


def simulate_late(course: Course, worksheet: str, student: str) -> None:
    """The demo cannot wait two days: the late student's timestamp is set after the due date."""
    (course.submitted(student, worksheet) / "timestamp.txt").write_text(scenarios.LATE_TIMESTAMP)


def run(
    template: Path,
    root: Path,
    worksheets: list[str] | None = None,
    students: list[str] | None = None,
    workers: int | None = None,
) -> Result:
    start = time.perf_counter()
    if root.exists():
        shutil.rmtree(root)
    worksheets = worksheets or Course(template).assignments()
    course = new_course(root, template, worksheets)
    # Always the demo's own exchange, even when DLCOURSE_EXCHANGE names a real one.
    exchange = course.root / "exchange"
    exchange.mkdir(parents=True)
    students = students or list(scenarios.SCENARIOS)
    outcomes: dict[str, list[Outcome]] = {}
    reports = []
    for worksheet in worksheets:
        print(f"\n== {worksheet} ==")
        release_nb = release(course, exchange, worksheet)
        class_works(
            course, exchange, worksheet, students, release_nb, workers or os.cpu_count() or 1
        )
        nbgrader(course.root, "collect", worksheet, "--update", f"--Exchange.root={exchange}")
        for student in students:
            if scenarios.SCENARIOS[student].late:
                simulate_late(course, worksheet, student)
        print(f"collected {len(students)} submissions; autograding")
        outcomes[worksheet], path = autograde.grade(course, worksheet, students, workers)
        reports.append(path)
    grades = autograde.export(course)
    return Result(course, outcomes, grades, reports, time.perf_counter() - start)
