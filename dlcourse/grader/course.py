"""A course directory: every path the grader reads or writes, named by nbgrader's own
`CourseDirectory` (from the course's `nbgrader_config.py`), plus the grader's private areas."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import nbformat

from dlcourse import settings

STAGED = "staged"  # repaired copies of submitted/, what autograde reads


@dataclass(frozen=True)
class Course:
    root: Path

    @classmethod
    def at(cls, root: str | Path | None = None) -> Course:
        found = Path(root).resolve() if root else settings.course_root()
        if found is None or not (found / "nbgrader_config.py").is_file():
            where = found or Path.cwd()
            raise NotACourse(f"{where} is not a course root (no nbgrader_config.py)")
        return cls(found)

    @cached_property
    def config(self):
        from traitlets.config import PyFileConfigLoader

        return PyFileConfigLoader("nbgrader_config.py", path=str(self.root)).load_config()

    @cached_property
    def coursedir(self):
        from nbgrader.coursedir import CourseDirectory

        return CourseDirectory(config=self.config, root=str(self.root))

    @property
    def course_id(self) -> str:
        return self.coursedir.course_id

    @property
    def db_url(self) -> str:
        return self.coursedir.db_url

    def gradebook(self):
        from nbgrader.api import Gradebook

        return Gradebook(self.db_url, self.course_id)

    def _folder(self, step: str, student: str = ".", assignment: str = "") -> Path:
        return Path(self.coursedir.format_path(step, student, assignment))

    def source(self, assignment: str = "") -> Path:
        return self._folder(self.coursedir.source_directory, ".", assignment)

    def release(self, assignment: str = "") -> Path:
        return self._folder(self.coursedir.release_directory, ".", assignment)

    def submitted(self, student: str = ".", assignment: str = "") -> Path:
        return self._folder(self.coursedir.submitted_directory, student, assignment)

    def staged(self, student: str = ".", assignment: str = "") -> Path:
        return self._folder(STAGED, student, assignment)

    def autograded(self, student: str = ".", assignment: str = "") -> Path:
        return self._folder(self.coursedir.autograded_directory, student, assignment)

    def feedback(self, student: str = ".", assignment: str = "") -> Path:
        return self._folder(self.coursedir.feedback_directory, student, assignment)

    # The grader's own areas (student data: instructor-only, ignored by git).
    @property
    def private(self) -> Path:
        return self.root / "grading"

    def notes(self, assignment: str, student: str) -> Path:
        return self.private / "notes" / assignment / f"{student}.txt"

    def log(self, assignment: str, student: str) -> Path:
        return self.private / "logs" / assignment / f"{student}.log"

    def expected(self, assignment: str) -> Path:
        return self.private / "expected" / f"{assignment}.json"

    @property
    def backups(self) -> Path:
        return self.private / "backups"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def grades_csv(self) -> Path:
        return self.root / "grades.csv"

    def assignments(self) -> list[str]:
        folder = self.source()
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and any(p.glob("*.ipynb")))

    def release_notebooks(self, assignment: str) -> dict[str, nbformat.NotebookNode]:
        return _notebooks(self.release(assignment))

    def source_notebooks(self, assignment: str) -> dict[str, nbformat.NotebookNode]:
        return _notebooks(self.source(assignment))

    def collected_students(self, assignment: str) -> list[str]:
        submitted = self.submitted()
        if not submitted.is_dir():
            return []
        return sorted(
            p.name
            for p in submitted.iterdir()
            if p.is_dir() and not p.is_symlink() and (p / assignment).is_dir()
        )

    def scores(self, assignment: str, student: str) -> dict[str, float]:
        """grade_id -> score of every autograded cell in the student's submission (written
        answers: `manual_scores`)."""
        result = {}
        with self.gradebook() as gb:
            submission = gb.find_submission(assignment, student)
            for nb in submission.notebooks:
                for grade in nb.grades:
                    if grade.cell.cell_type != "markdown":
                        result[grade.name] = float(grade.score)
        return result

    def manual_scores(self, assignment: str, student: str) -> dict[str, float | None]:
        """grade_id -> the points a grader gave each written answer; None: not graded yet."""
        result = {}
        with self.gradebook() as gb:
            submission = gb.find_submission(assignment, student)
            for nb in submission.notebooks:
                for grade in nb.grades:
                    if grade.cell.cell_type == "markdown":
                        result[grade.name] = grade.manual_score
        return result


class NotACourse(RuntimeError):
    pass


def _notebooks(folder: Path) -> dict[str, nbformat.NotebookNode]:
    return {p.stem: nbformat.read(p, as_version=4) for p in sorted(folder.glob("*.ipynb"))}
