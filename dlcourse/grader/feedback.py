"""What the student reads at the top of their feedback page, whichever door generated it.

`AddGradingNotes` runs in `nbgrader generate_feedback` (the driver's, the formgrader's
buttons, a plain command): it puts a Markdown cell first that says the notebook was run with
the grading settings (quick training, so printed training results can differ from the
student's own full-settings run) and lists this student's grading notes (`grading/notes/`,
written by the driver: repairs, lateness, what went wrong). The notes are in the page itself,
so Release Feedback, which copies only the HTML, hands them out.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import NbGraderPreprocessor

from dlcourse.grader.course import Course

SETTINGS_NOTE = (
    "The grader ran this notebook with the course's **grading settings**: quick training "
    "(small, fast runs), whatever your own run used, so printed training results and the "
    "settings line can differ from what your notebook showed. Grades come from the tests "
    "below, which are written for these settings."
)
NOTES_TAG = "dlcourse-grading-notes"


def notes_lines(course: Course, assignment: str, student: str) -> list[str]:
    """The student's grading notes as written by the driver (one per `- ` line)."""
    path = course.notes(assignment, student)
    if not path.is_file():
        return []
    return [line[2:] for line in path.read_text().splitlines() if line.startswith("- ")]


def notes_cell(notes: list[str]) -> nbformat.NotebookNode:
    from dlcourse.grader.report import md_escape

    text = ["## Grading notes", "", SETTINGS_NOTE]
    if notes:
        text += ["", "About your submission:", ""]
        text += [f"- {md_escape(note)}" for note in notes]
    cell = nbformat.v4.new_markdown_cell("\n".join(text))
    cell.metadata["tags"] = [NOTES_TAG]
    return cell


class AddGradingNotes(NbGraderPreprocessor):
    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        course = Course(Path(CourseDirectory(config=self.config).root).resolve())
        notes = notes_lines(course, info["assignment"], info["student"])
        nb.cells = [c for c in nb.cells if NOTES_TAG not in c.metadata.get("tags", [])]
        nb.cells.insert(0, notes_cell(notes))
        return nb, resources
