"""What a worksheet's cells are (nbgrader's roles, read with `nbgrader.utils`) and the
reference answers in its master copy."""

from __future__ import annotations

import copy

import nbformat
from nbgrader import utils

from dlcourse.grader.quoting import quoted

SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")
Notebook = nbformat.NotebookNode


def grade_id(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def is_answer(cell) -> bool:
    return utils.is_solution(cell)


def is_test(cell) -> bool:
    """An autograded test cell: graded, not a solution, code."""
    return utils.is_grade(cell) and not utils.is_solution(cell) and cell.cell_type == "code"


def is_setup(cell) -> bool:
    """A locked code cell that is neither an answer nor a test: setup the student cannot edit."""
    locked = cell.metadata.get("nbgrader", {}).get("locked")
    return cell.cell_type == "code" and bool(locked) and not (is_answer(cell) or is_test(cell))


def failed_setup_cells(nb: Notebook) -> list[str]:
    """The label "'grade_id' ('error name')" of each setup cell with an error output. The
    error's name is the kernel's, whatever a student made it: quoted as one escaped line."""
    failed = []
    for cell in nb.cells:
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if errors and is_setup(cell):
            failed.append(f"{quoted(grade_id(cell))} ({quoted(errors[0].get('ename'), 60)})")
    return failed


def solution_text(source: str) -> str:
    """The reference answer as a student would type it: marker lines removed."""
    lines = [ln for ln in source.splitlines() if ln.strip() not in SOLUTION_MARKERS]
    return "\n".join(lines)


def reference_answers(source_nb: Notebook) -> dict[str, str]:
    """grade_id -> reference answer for every solution cell of a master notebook."""
    return {grade_id(c): solution_text(c.source) for c in source_nb.cells if is_answer(c)}


def is_written(cell) -> bool:
    """A written answer, graded by hand in formgrader (dlcourse/grader/written.py)."""
    return cell.cell_type == "markdown" and utils.is_solution(cell) and utils.is_grade(cell)


def grade_cells(nb: Notebook) -> dict[str, float]:
    """grade_id -> points for every autograded cell (written answers, graded by hand, are
    `written_cells`)."""
    return {
        grade_id(c): float(c.metadata["nbgrader"]["points"])
        for c in nb.cells
        if utils.is_grade(c) and not is_written(c)
    }


def written_cells(nb: Notebook) -> dict[str, float]:
    """grade_id -> points for every written answer (graded by hand)."""
    return {grade_id(c): float(c.metadata["nbgrader"]["points"]) for c in nb.cells if is_written(c)}


def solution_ids(nb: Notebook) -> list[str]:
    """The code answers' grade_ids (written answers are `written_cells`)."""
    return [grade_id(c) for c in nb.cells if is_answer(c) and c.cell_type == "code"]


def test_ids(nb: Notebook) -> list[str]:
    return [grade_id(c) for c in nb.cells if is_test(c)]


def tests_of(nb: Notebook, solution_id: str) -> list[str]:
    """The test cells that check one answer: those between it and the next answer cell."""
    found, result = False, []
    for cell in nb.cells:
        if is_answer(cell):
            if found:
                break
            found = grade_id(cell) == solution_id
        elif found and is_test(cell):
            result.append(grade_id(cell))
    return result


def answer_sources(nb: Notebook, test_id: str) -> list[str]:
    """Sources of the answer cells a test cell checks: the solution code cells between the
    previous test cell and this one."""
    sources: list[str] = []
    for cell in nb.cells:
        if is_test(cell):
            if grade_id(cell) == test_id:
                return sources
            sources = []
        elif is_answer(cell) and cell.cell_type == "code":
            sources.append(cell.source)
    return []


def answered(release_nb: Notebook, answers: dict[str, str]) -> Notebook:
    """A copy of the student version with the named solution cells filled in (others blank)."""
    nb = copy.deepcopy(release_nb)
    for cell in nb.cells:
        if is_answer(cell) and grade_id(cell) in answers:
            cell.source = answers[grade_id(cell)]
    return nb
