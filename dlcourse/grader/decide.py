"""nbgrader preprocessors that make the grade the grader's decision, not the kernel's.

`DecideVerdicts` runs in autograde after the notebook was executed and before nbgrader saves
the grades: each test cell's score is decided from the values its hidden tests recorded,
compared in this process with the reference run (`dlcourse.grader.reference`); the cell's
outputs are rewritten so nbgrader's `determine_grade` reads exactly full points or 0. When a
setup cell (locked, not a test) failed, the reference is run again first (`reference.verify`):
if it fails too, the grading environment is broken and `ReferenceFailed` stops this
submission before nbgrader saves any grade of it.

`HideHiddenTests` runs in generate_feedback: feedback shows each test's visible part, its
result and message, but not the source of its hidden tests (those stay hidden all term).
"""

from __future__ import annotations

from pathlib import Path

from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Bool

from dlcourse.grader import cells, reference, verdict
from dlcourse.grader.course import Course

HIDDEN_BEGIN = "### BEGIN HIDDEN TESTS"
HIDDEN_END = "### END HIDDEN TESTS"


class DecideVerdicts(NbGraderPreprocessor):
    show_hidden_values = Bool(
        False,
        help="Say in the failure message what a hidden test expected (default: only what the "
        "student's code gave, so that expected values do not leak through feedback).",
    ).tag(config=True)

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        course = Course(Path(CourseDirectory(config=self.config).root).resolve())
        if cells.failed_setup_cells(nb):
            results = reference.verify(course, info["assignment"])
        else:
            results = reference.ensure(course, info["assignment"])
        expected = results["notebooks"].get(info["notebook"], {})
        for cell in nb.cells:
            if not cells.is_test(cell):
                continue
            gid = cells.grade_id(cell)
            probes, rule = verdict.expectation(expected, gid)
            decision = verdict.decide(cell, probes, rule, cells.answer_sources(nb, gid))
            verdict.apply(cell, decision, show_hidden_values=self.show_hidden_values)
        return nb, resources


def visible_part(source: str) -> tuple[str, int]:
    """The test's source without its hidden part, and how many lines were hidden."""
    kept, hidden, inside = [], 0, False
    for line in source.splitlines():
        if line.strip() == HIDDEN_BEGIN:
            inside = True
            continue
        if line.strip() == HIDDEN_END:
            inside = False
            continue
        if inside:
            hidden += 1
        else:
            kept.append(line)
    return "\n".join(kept), hidden


class HideHiddenTests(NbGraderPreprocessor):
    enabled = Bool(
        True,
        help="Feedback shows each hidden test's name, points, result and message, not its "
        "source. Turn off to show hidden tests in full (they are then public).",
    ).tag(config=True)

    def preprocess(self, nb, resources):
        if not self.enabled:
            return nb, resources
        for cell in nb.cells:
            if not cells.is_test(cell):
                continue
            shown, hidden = visible_part(cell.source)
            if hidden:
                note = "# (hidden tests of this cell are run by the grader and not shown)"
                cell.source = f"{shown.rstrip()}\n{note}".lstrip()
                for output in cell.get("outputs", []):
                    if output.get("output_type") == "error" and output.get("ename") != "TestFailed":
                        # a traceback quotes the cell's source lines, hidden ones included
                        output["traceback"] = [f"{output.get('ename')}: {output.get('evalue')}"]
        return nb, resources
