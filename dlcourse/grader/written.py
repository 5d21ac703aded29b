"""Written (manually graded) questions and their rubrics.

A written question is nbgrader's "manually graded answer": a Markdown cell whose nbgrader
metadata says solution, grade, not locked, its points and a `grade_id` (by convention
`written_<topic>`). In the master copy (source/) it holds a model answer, and the cell right
after it is the question's **rubric**: a Markdown cell whose metadata is
`{"dlcourse": {"rubric_for": "<grade_id>"}}` (what earns full, part and no points).

Where the rubric goes, and where it never goes:

- `make release` / formgrader's Generate button (nbgrader generate_assignment): `DropRubrics`
  removes every rubric cell before nbgrader's own steps, which give the answer cell the text
  stub ("YOUR ANSWER HERE"). No rubric reaches release/ or the exchange.
- Grading: the rubric is never put into a student's notebook (autograded/ or feedback). The
  formgrader's grading view, rendered by `dlcourse.grader.safe_page.CourseHTMLExporter` with
  the `dlcourse_formgrade` template, shows it in a box right below the answer, read at render
  time from the master copy (`rubrics`), keyed by the answer cell's grade_id. What a student
  writes (a cell that looks like a rubric, `dlcourse` metadata: autograde's sanitiser drops
  metadata outside its allow-list, and the page's sanitiser drops the box's class from
  student markup) is shown as the student's text, never in that box, and earns nothing: the
  gradebook's cells come from the master.
- Points: the answer scores nothing until a grader gives it points in formgrader (the report
  says "needs manual grading"); nbgrader keeps a manual score through an autograde re-run.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor

from dlcourse.grader.cells import is_written

RUBRIC_CLASS = "dlcourse-rubric"  # the formgrader box; student markup may not carry it


def rubric_for(cell) -> str | None:
    """The grade_id a master's rubric cell belongs to, or None."""
    meta = cell.get("metadata", {}).get("dlcourse")
    if isinstance(meta, dict) and isinstance(meta.get("rubric_for"), str):
        return meta["rubric_for"]
    return None


def rubrics(master: nbformat.NotebookNode) -> dict[str, str]:
    """grade_id -> rubric (Markdown) for every written answer of a master notebook that is
    followed by its rubric cell."""
    found: dict[str, str] = {}
    for before, cell in zip(master.cells, master.cells[1:], strict=False):
        gid = rubric_for(cell)
        if gid and is_written(before):
            if before.metadata["nbgrader"].get("grade_id") == gid:
                found[gid] = cell.source
    return found


def master_rubrics(course_root: str | Path, assignment: str, notebook: str) -> dict[str, str]:
    """The rubrics of source/<assignment>/<notebook>.ipynb ({} when it is not there)."""
    path = Path(course_root) / "source" / assignment / f"{notebook}.ipynb"
    if "/" in assignment or "/" in notebook or not path.is_file():
        return {}
    return rubrics(nbformat.read(path, as_version=4))


def drop_rubrics(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb.cells = [c for c in nb.cells if rubric_for(c) is None]
    return nb


class DropRubrics(NbGraderPreprocessor):
    """generate_assignment: no rubric cell reaches the student version."""

    def preprocess(self, nb, resources):
        return drop_rubrics(nb), resources
