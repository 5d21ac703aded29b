"""nbgrader preprocessors that make the grade the grader's decision, not the kernel's.

`DecideVerdicts` runs in autograde after the notebook was executed and before nbgrader saves
the grades: each test cell's score is decided from the values its hidden tests recorded,
compared in this process with the reference run (`dlcourse.grader.reference`); the cell's
outputs are replaced by the grader's verdict alone (`verdict.apply`), so nbgrader's
`determine_grade` reads exactly the points the grader decided (full, a share of them for the
checks passed, or 0) and nothing the kernel printed while it ran the hidden tests stays in the
notebook. The instructor's detail of each failure (the student's
values, exception text, differences) goes to nbgrader's log, which the driver keeps in
`grading/logs/` for the instructor alone. When a
setup cell (locked, not a test) failed, the reference is run again first (`reference.verify`):
if it fails too, the grading environment is broken and `ReferenceFailed` stops this
submission before nbgrader saves any grade of it.
A setup cell that ran past its time limit stops the submission the same way, before any grade
is saved (`crash.SetupCellStopped`): the machine was starved, and the driver grades that student
again alone (`dlcourse.grader.driver`).

`HideHiddenTests` runs in generate_feedback: feedback shows each test's visible part and the
grader's verdict (`verdict.verdict_outputs`: whatever else a test cell's outputs hold is
dropped), but not the source of its hidden tests (those stay hidden all term).
"""

from __future__ import annotations

from pathlib import Path

from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Bool

from dlcourse.grader import cells, crash, reference, verdict
from dlcourse.grader.course import Course
from dlcourse.grader.quoting import printable

HIDDEN_BEGIN = "### BEGIN HIDDEN TESTS"
HIDDEN_END = "### END HIDDEN TESTS"


class DecideVerdicts(NbGraderPreprocessor):
    show_hidden_values = Bool(
        False,
        help="Say in the failure message what a hidden test expected (default: only which check "
        "failed and how, so that expected values do not leak through feedback). Never shown "
        "either way: anything the student's kernel produced (values, exception text, counts, "
        "differences), which may quote the hidden tests.",
    ).tag(config=True)

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        course = Course(Path(CourseDirectory(config=self.config).root).resolve())
        if (setup := crash.stopped_setup_cell(nb)) is not None:  # the machine's problem
            raise crash.SetupCellStopped.at(setup, info["notebook"])
        if cells.failed_setup_cells(nb):
            results = reference.verify(course, info["assignment"])
        else:
            results = reference.ensure(course, info["assignment"])
        expected = results["notebooks"].get(info["notebook"], {})
        for cell in nb.cells:
            if not cells.is_test(cell):
                continue
            decision = verdict.decide_test_cell(cell, expected, nb)
            if not decision.passed:
                detail = "; ".join(printable(m, 500) for m in decision.messages)
                share = f"{decision.fraction:.0%} of its points"
                gid = printable(cells.grade_id(cell))
                self.log.info("Test cell %s failed (%s): %s", gid, share, detail)
            verdict.apply(cell, decision, show_hidden_values=self.show_hidden_values)
        return nb, resources


def split_hidden(source: str) -> tuple[list[str], list[str]]:
    """A test cell's (visible lines, hidden lines), the marker lines in neither."""
    kept: list[str] = []
    hidden: list[str] = []
    inside = False
    for line in source.splitlines():
        if line.strip() in (HIDDEN_BEGIN, HIDDEN_END):
            inside = line.strip() == HIDDEN_BEGIN
            continue
        (hidden if inside else kept).append(line)
    return kept, hidden


def visible_part(source: str) -> tuple[str, int]:
    """The test's source without its hidden part, and how many lines were hidden."""
    kept, hidden = split_hidden(source)
    return "\n".join(kept), len(hidden)


class HideHiddenTests(NbGraderPreprocessor):
    enabled = Bool(
        True,
        help="Feedback shows each hidden test's name, points, result and message, not its "
        "source. Turn off to show hidden tests in full (they are then public). Either way a "
        "test cell shows only the grader's verdict, never what the kernel printed.",
    ).tag(config=True)

    def preprocess(self, nb, resources):
        for cell in nb.cells:
            if not cells.is_test(cell):
                continue
            cell.outputs = verdict.verdict_outputs(cell)
            shown, hidden = visible_part(cell.source)
            if hidden and self.enabled:
                note = "# (hidden tests of this cell are run by the grader and not shown)"
                cell.source = f"{shown.rstrip()}\n{note}".lstrip()
        return nb, resources
