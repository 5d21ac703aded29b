"""One student's autograde, in a process of its own: `python -m dlcourse.grader.child COURSE
ASSIGNMENT STUDENT RESULT`. nbgrader's Autograde runs in this process; what happened is
written as JSON to RESULT (a path only the grader can see), from the exceptions nbgrader
raised, never from log text. The driver kills the process group at the wall-clock limit."""

from __future__ import annotations

import json
import logging
import signal
import sys
from pathlib import Path

from dlcourse.grader.nbgrader_cli import skip_unused_imports

skip_unused_imports()  # one of these processes starts per submission

from dlcourse.grader.course import STAGED, Course  # noqa: E402


def autograde(course: Course, assignment: str, student: str) -> dict:
    import sqlalchemy.exc
    from nbgrader.converters import Autograde
    from nbgrader.converters.base import NbGraderException

    failures: list[dict[str, str]] = []

    class RecordingAutograde(Autograde):
        def convert_single_notebook(self, notebook_filename: str) -> None:
            try:
                super().convert_single_notebook(notebook_filename)
            except Exception as err:
                failures.append(
                    {
                        "notebook": Path(notebook_filename).stem,
                        "error": type(err).__name__,
                        "message": str(err)[:500],
                    }
                )
                raise

    coursedir = course.coursedir
    coursedir.submitted_directory = STAGED
    coursedir.assignment_id = assignment
    coursedir.student_id = student
    app = RecordingAutograde(coursedir=coursedir, config=course.config)
    app.force = True
    app.create_student = True
    db_locked = False
    try:
        app.start()
        ok = True
    except NbGraderException as err:
        ok = False
        cause = err.__context__
        db_locked = isinstance(cause, sqlalchemy.exc.OperationalError) and "locked" in str(cause)
        if not failures:  # failed before any notebook ran (no assignment in the gradebook, ...)
            failures.append({"notebook": "", "error": "NbGraderException", "message": str(err)})
    return {"ok": ok and not failures, "failures": failures, "db_locked": db_locked}


def die_with_parent() -> None:
    """Be SIGKILLed when the process that started us dies (a lost Dask worker, a killed
    grader), so a student is never graded by an orphan while the scheduler grades them again
    elsewhere. Set here, after exec (a preexec_fn is unsafe in a threaded grader). Linux."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def main(argv: list[str]) -> int:
    die_with_parent()
    course_root, assignment, student, result_path = argv
    # nbgrader's own log (never the kernel's output) goes to the grader's per-student log file.
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(message)s", stream=sys.stderr)
    result = autograde(Course.at(course_root), assignment, student)
    Path(result_path).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
