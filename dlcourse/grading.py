"""Build submissions from worksheets and read scores back from nbgrader's gradebook.

Used by the test suite (reference solution = full marks, blank = 0, known wrong answers =
expected partial marks) and by the demo class.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import nbformat

from dlcourse.notebooks import read

SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")


def nbgrader_meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def solution_text(source: str) -> str:
    """The reference answer as a student would type it: marker lines removed."""
    lines = [ln for ln in source.splitlines() if ln.strip() not in SOLUTION_MARKERS]
    return "\n".join(lines)


def reference_answers(source_nb: nbformat.NotebookNode) -> dict[str, str]:
    """grade_id -> reference answer for every solution cell of a master notebook."""
    return {
        nbgrader_meta(c)["grade_id"]: solution_text(c.source)
        for c in source_nb.cells
        if nbgrader_meta(c).get("solution")
    }


def grade_cells(nb: nbformat.NotebookNode) -> dict[str, float]:
    """grade_id -> points for every autograded (test) cell."""
    return {
        nbgrader_meta(c)["grade_id"]: float(nbgrader_meta(c)["points"])
        for c in nb.cells
        if nbgrader_meta(c).get("grade")
    }


def tests_of(nb: nbformat.NotebookNode, solution_id: str) -> list[str]:
    """The test cells that check one answer: those between it and the next answer cell."""
    found, result = False, []
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if meta.get("solution"):
            if found:
                break
            found = meta["grade_id"] == solution_id
        elif found and meta.get("grade"):
            result.append(meta["grade_id"])
    return result


def answered(
    release_nb: nbformat.NotebookNode,
    answers: dict[str, str],
) -> nbformat.NotebookNode:
    """A copy of the student version with the named solution cells filled in (others blank)."""
    nb = copy.deepcopy(release_nb)
    for cell in nb.cells:
        grade_id = nbgrader_meta(cell).get("grade_id")
        if nbgrader_meta(cell).get("solution") and grade_id in answers:
            cell.source = answers[grade_id]
    return nb


def new_course(root: Path, repo: Path, worksheets: list[str]) -> Path:
    """A throwaway course directory with the repo's config and the given master copies."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(repo / "nbgrader_config.py", root / "nbgrader_config.py")
    for name in worksheets:
        shutil.copytree(repo / "source" / name, root / "source" / name, dirs_exist_ok=True)
    return root


def submit(
    course: Path, assignment: str, student: str, notebooks: dict[str, nbformat.NotebookNode]
):
    """Place a submission where `nbgrader autograde` looks for it."""
    folder = course / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    for name, nb in notebooks.items():
        nbformat.write(nb, folder / f"{name}.ipynb")
    return folder


def release_notebooks(course: Path, assignment: str) -> dict[str, nbformat.NotebookNode]:
    return {p.stem: read(p) for p in sorted((course / "release" / assignment).glob("*.ipynb"))}


def source_notebooks(course: Path, assignment: str) -> dict[str, nbformat.NotebookNode]:
    return {p.stem: read(p) for p in sorted((course / "source" / assignment).glob("*.ipynb"))}


def scores(course: Path, assignment: str, student: str) -> dict[str, float]:
    """grade_id -> score of every graded cell in the student's autograded submission."""
    from nbgrader.api import Gradebook

    result = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        submission = gb.find_submission(assignment, student)
        for nb in submission.notebooks:
            for grade in nb.grades:
                result[grade.name] = float(grade.score)
    return result
