"""Find the cell that breaks grading: it kills the kernel (os._exit, a native crash, a
resource limit) or cuts it off from the grader (a fork bomb's children garble the kernel's
messages). Runs the notebook with exactly the grading execution settings (the course's
`SandboxedExecute`: sandbox, limits, timeouts, notebook deadline, output cap)."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from dlcourse.grader.course import Course
from dlcourse.grader.execute import SandboxedExecute


def find_crashing_cell(course: Course, assignment: str, path: Path) -> int | None:
    nb = nbformat.read(path, as_version=4)
    executor = SandboxedExecute(config=course.config, locate_crash=True)
    resources = {"metadata": {"path": str(path.parent)}, "nbgrader": {"assignment": assignment}}
    try:
        executor.preprocess(nb, resources)
    except (DeadKernelError, CellTimeoutError, RuntimeError):
        pass
    return executor.crashed_cell


def neutralise_cell(path: Path, cell_index: int, reason: str) -> None:
    """Replace one cell's code by an error, so the rest of the notebook can be graded."""
    nb = nbformat.read(path, as_version=4)
    nb.cells[cell_index].source = f"raise RuntimeError({reason!r})"
    nbformat.write(nb, path)
