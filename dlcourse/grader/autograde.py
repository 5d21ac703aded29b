"""`python -m dlcourse autograde WORKSHEET`: the grading half of a course's cycle, after
`nbgrader collect`: autograde every collected submission (parallel, sandboxed, on repaired
copies), generate feedback with grading notes, write the report, export grades.csv."""

from __future__ import annotations

from pathlib import Path

from dlcourse.grader import report, sandbox
from dlcourse.grader.cluster import ClusterUnavailable, DaskExecutor
from dlcourse.grader.course import Course, NotACourse
from dlcourse.grader.driver import GradingEnvironmentBroken, Outcome, autograde_all
from dlcourse.grader.gradebook import BackupFailed
from dlcourse.grader.reference import ReferenceFailed
from dlcourse.grader.runner import nbgrader

NOTHING_WRITTEN = (
    "Nothing was written (gradebook, grades.csv, feedback): fix the grading environment, "
    "then grade again."
)


def grade(
    course: Course,
    worksheet: str,
    students: list[str],
    workers: int | None = None,
    executor=None,
    progress=print,
    feedback: bool = True,
) -> tuple[list[Outcome], Path]:
    """Collected submissions -> autograde -> notes -> feedback (unless told not to) -> the
    worksheet's report. `executor`: where the per-student grading runs (default: local
    processes; a `dlcourse.grader.cluster.DaskExecutor` for a Dask cluster). Every door into
    grading (this command, the formgrader's Autograde button, `nbgrader autograde`:
    `dlcourse.grader.door`) comes through here."""
    release = course.release_notebooks(worksheet)
    outcomes = autograde_all(
        course, worksheet, students, release, workers, progress=progress, executor=executor
    )
    for outcome in outcomes:
        report.write_notes(course, worksheet, outcome)
    if feedback:
        nbgrader(course.root, "generate_feedback", worksheet, "--force", check=False)
    return outcomes, report.assignment_report(course, worksheet, outcomes)


def export(course: Course) -> Path:
    nbgrader(course.root, "export", f"--to={course.grades_csv}")
    course.grades_csv.chmod(0o600)
    return course.grades_csv


def command(
    course_dir: str | None,
    worksheet: str,
    workers: int | None,
    scheduler: str | None = None,
    certs: str | None = None,
) -> int:
    try:
        course = Course.at(course_dir)
    except NotACourse as err:
        print(f"{err}; run it in the course folder or pass --course DIR")
        return 2
    if not course.release(worksheet).is_dir():
        print(f"{worksheet} has no release/ yet: run `nbgrader generate_assignment {worksheet}`")
        return 2
    students = course.collected_students(worksheet)
    if not students:
        print(
            f"No collected submissions of {worksheet} in {course.submitted()}: run "
            f"`nbgrader collect {worksheet}` first."
        )
        return 2
    executor = None
    if scheduler:  # --scheduler: one task per student on a Dask cluster
        executor = DaskExecutor(scheduler, Path(certs).expanduser() if certs else None)
    try:
        outcomes, path = grade(course, worksheet, students, workers, executor)
    except (ReferenceFailed, GradingEnvironmentBroken, sandbox.SandboxUnavailable) as err:
        print(f"Refusing to grade {worksheet}: {err}")
        print(NOTHING_WRITTEN)
        return 3
    except (ClusterUnavailable, BackupFailed) as err:
        print(f"Refusing to grade {worksheet}: {err}")
        return 3
    print(f"grades (CSV): {export(course)}")
    print(f"feedback:     {course.feedback()}/<student>/{worksheet}/")
    print(f"report:       {path}")
    return 0 if all(o.ok for o in outcomes) else 1
