"""One grading path, whichever door the instructor uses.

The formgrader's Autograde button (`NbGraderAPI.autograde`) and the `nbgrader autograde`
command both build nbgrader's `Autograde` converter by name. `use_course_autograde()`, called
from the course's `nbgrader_config.py` (which every nbgrader process loads before it grades),
makes those two names `CourseAutograde`: it grades the students it was asked for through
`dlcourse.grader.autograde.grade`, the driver's own path: the canary in this environment,
staging (links and special files refused, repairs), the sandboxed child per student, verdicts
decided outside the kernel, notes, and a broken environment that writes nothing.

The child process that grades one student uses nbgrader's own `Autograde` (imported from
`nbgrader.converters`, which is left as it is), so nothing here grades twice. Feedback is
left to the door's own Generate Feedback, as nbgrader does.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

from nbgrader.converters import Autograde
from nbgrader.converters.base import NbGraderException

from dlcourse.grader.course import Course


class CourseAutograde(Autograde):
    def start(self) -> None:
        from dlcourse.grader import autograde, sandbox
        from dlcourse.grader.driver import GradingEnvironmentBroken
        from dlcourse.grader.gradebook import BackupFailed
        from dlcourse.grader.reference import ReferenceFailed

        course = Course.at(Path(self.coursedir.root))
        assignment = self.coursedir.assignment_id
        if not assignment or any(ch in assignment for ch in "*?["):
            self._fail("name one assignment to autograde")
        if not course.release(assignment).is_dir():
            self._fail(f"{assignment} has no release/ yet: generate it first")
        if self.coursedir.db_url != course.db_url or self.coursedir.notebook_id != "*":
            self._fail(
                "the course grades every notebook of an assignment into the gradebook its "
                "nbgrader_config.py names: drop --db and --notebook"
            )
        students = self._students(course, assignment)
        if not students:
            self._fail(
                f"no collected submission of {assignment} matches {self.coursedir.student_id!r}"
            )
        try:
            outcomes, _ = autograde.grade(
                course, assignment, students, progress=self.log.info, feedback=False
            )
        except (
            ReferenceFailed,
            GradingEnvironmentBroken,
            BackupFailed,
            sandbox.SandboxUnavailable,
        ) as err:
            self._fail(f"refusing to grade {assignment}: {err}. {autograde.NOTHING_WRITTEN}")
        for outcome in outcomes:
            for note in outcome.notes:
                self.log.warning("%s: %s", outcome.student, note)
        if failed := [o.student for o in outcomes if not o.ok]:
            self._fail(
                f"{len(failed)} of {len(outcomes)} submission(s) of {assignment} could not be "
                f"graded fully ({', '.join(failed)}): see the notes above and "
                f"{course.reports / (assignment + '.md')}"
            )

    def _students(self, course: Course, assignment: str) -> list[str]:
        pattern = self.coursedir.student_id or "*"
        excluded = set(filter(None, self.coursedir.student_id_exclude.split(",")))
        return [
            s
            for s in course.collected_students(assignment)
            if (s == pattern or fnmatch.fnmatchcase(s, pattern)) and s not in excluded
        ]

    def _fail(self, message: str):
        self.log.error(message)
        raise NbGraderException(message)


def use_course_autograde() -> None:
    """Make the formgrader's button and `nbgrader autograde` build `CourseAutograde`."""
    from nbgrader.apps import api, autogradeapp

    api.Autograde = CourseAutograde
    autogradeapp.Autograde = CourseAutograde
