"""Find the cell that breaks grading: it kills the kernel (os._exit, a native crash, a
resource limit) or cuts it off from the grader (a fork bomb's children garble the kernel's
messages). Runs the notebook with exactly the grading execution settings (the course's
`SandboxedExecute`: sandbox, limits, timeouts, notebook deadline, output cap), in a process of
its own that the driver stops at the student's remaining wall clock:
`python -m dlcourse.grader.crash COURSE ASSIGNMENT NOTEBOOK RESULT` writes `{"cell": index}`.

A cell that breaks grading is the student's only when it is theirs to change: a setup cell
(locked, neither an answer nor a test) that times out or whose kernel dies says the machine
was starved (or that code run before it broke it), so the driver grades that student again
alone instead of blaming them (`SetupCellStopped`, `is_setup_cell`).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

if __name__ == "__main__":  # one of these processes starts per crashing submission
    from dlcourse.grader.nbgrader_cli import skip_unused_imports

    skip_unused_imports()

import nbformat  # noqa: E402
from nbclient.exceptions import CellTimeoutError, DeadKernelError  # noqa: E402

from dlcourse.grader import cells  # noqa: E402
from dlcourse.grader.course import Course  # noqa: E402
from dlcourse.grader.quoting import printable, quoted  # noqa: E402

TIMEOUT_ERROR = "CellTimeoutError"  # the error nbgrader's Execute writes into a stopped cell


class SetupCellStopped(RuntimeError):
    """A setup cell ran past its time limit: raised before any grade of the notebook is saved
    (`dlcourse.grader.decide`, `dlcourse.grader.execute`), so the driver can grade the student
    again alone."""

    @classmethod
    def at(cls, setup_id: object, notebook: object) -> SetupCellStopped:
        return cls(
            f"the course's setup cell {quoted(setup_id)} of '{printable(notebook)}.ipynb' ran "
            f"past its time limit"
        )


def stopped_setup_cell(nb: nbformat.NotebookNode) -> str | None:
    """The grade id of the first setup cell that nbgrader stopped at its time limit."""
    for cell in nb.cells:
        enames = [
            o.get("ename") for o in cell.get("outputs", []) if o.get("output_type") == "error"
        ]
        if cells.is_setup(cell) and TIMEOUT_ERROR in enames:
            return str(cells.grade_id(cell))
    return None


def is_setup_cell(path: Path, index: int) -> str | None:
    """The grade id of cell `index` of the notebook at `path` if it is a setup cell."""
    nb = nbformat.read(path, as_version=4)
    cell = nb.cells[index] if 0 <= index < len(nb.cells) else None
    return str(cells.grade_id(cell)) if cell is not None and cells.is_setup(cell) else None


def find_crashing_cell(course: Course, assignment: str, path: Path) -> int | None:
    from dlcourse.grader.execute import SandboxedExecute

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


def main(argv: list[str]) -> int:
    from dlcourse.grader.child import die_with_parent

    die_with_parent()
    # Appended to the student's grading log, after nbgrader's own.
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(message)s", stream=sys.stderr)
    course_root, assignment, notebook, result_path = argv
    logging.info("Looking for the cell that stopped the kernel in %s", Path(notebook).name)
    index = find_crashing_cell(Course.at(course_root), assignment, Path(notebook))
    Path(result_path).write_text(json.dumps({"cell": index}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
