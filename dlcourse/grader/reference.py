"""The reference run: the master notebooks (solutions and hidden tests) executed exactly as a
submission is graded, in the same sandbox and environment.

It is the canary and the source of truth at once. If the reference solution does not pass
every test here, the grading environment is broken (a missing package, no data, a wrong
setting) and grading the class would hand out wrong zeros: grading is refused, with the
reason. Otherwise the values its hidden tests recorded become the expected values every
submission is compared with (`dlcourse.grader.verdict`), and its cell times size the per-cell
timeouts. The result is cached per assignment in the grader's private area, keyed by the
master notebooks and the grader's own code, readable by the instructor only.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import nbformat

from dlcourse.grader import cells, verdict
from dlcourse.grader.course import Course

FORMAT = 1
# The code that decides verdicts: a change to it invalidates cached expectations.
_CODE = ("probe.py", "grader/verdict.py", "grader/reference.py")


class ReferenceFailed(RuntimeError):
    """The reference solution does not get full marks in this grading environment."""


def fingerprint(course: Course, assignment: str) -> str:
    digest = hashlib.sha256(f"format {FORMAT}".encode())
    for path in sorted(course.source(assignment).glob("*.ipynb")):
        digest.update(path.name.encode() + path.read_bytes())
    package = Path(__file__).resolve().parent.parent
    for name in _CODE:
        digest.update((package / name).read_bytes())
    return digest.hexdigest()


def run_reference(course: Course, assignment: str, notebook: Path) -> tuple[dict, dict]:
    """Execute one master notebook as grading does; (expected per test cell, seconds per
    nbgrader cell)."""
    from dlcourse.grader.execute import SandboxedExecute

    nb = nbformat.read(notebook, as_version=4)
    executor = SandboxedExecute(config=course.config, record_timing=True)
    resources = {
        "metadata": {"path": str(notebook.parent)},
        "nbgrader": {"assignment": assignment, "notebook": notebook.stem},
    }
    start = time.monotonic()
    try:
        executor.preprocess(nb, resources)
    except Exception as err:  # noqa: BLE001 - any failure here is the environment's
        raise ReferenceFailed(
            f"the reference solution of {assignment}/{notebook.name} could not be run in the "
            f"grading environment: {type(err).__name__}: {str(err)[:500]}"
        ) from err
    seconds = {}
    for cell in nb.cells:
        gid = cells.grade_id(cell)
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if errors and cell.cell_type == "code":
            where = gid or f"cell {nb.cells.index(cell)}"
            raise ReferenceFailed(
                f"the reference solution of {assignment}/{notebook.name} fails in the grading "
                f"environment at {where}: {errors[0].get('ename')}: "
                f"{str(errors[0].get('evalue'))[:500]}"
            )
        if gid:
            seconds[gid] = _seconds(cell)
    try:
        expected = verdict.expected_from(nb)
    except ValueError as err:
        raise ReferenceFailed(f"{assignment}/{notebook.name}: {err}") from err
    seconds["__total__"] = time.monotonic() - start
    return expected, seconds


def _seconds(cell) -> float:
    timing = cell.metadata.get("execution", {})
    try:
        from datetime import datetime

        started = datetime.fromisoformat(timing["iopub.status.busy"].rstrip("Z"))
        ended = datetime.fromisoformat(timing["shell.execute_reply"].rstrip("Z"))
        return max(0.0, (ended - started).total_seconds())
    except (KeyError, ValueError):
        return 0.0


def ensure(course: Course, assignment: str, *, force: bool = False) -> dict:
    """The cached reference results for `assignment`, running the reference when stale.

    {"fingerprint", "notebooks": {name: {grade_id: expectation}}, "seconds": {name: {...}}}
    Raises ReferenceFailed when the reference solution does not pass here.
    """
    path = course.expected(assignment)
    key = fingerprint(course, assignment)
    if path.is_file() and not force:
        try:
            cached = verdict.load_expected(path)
            if cached.get("fingerprint") == key:
                return cached
        except (OSError, ValueError):
            pass
    results: dict = {"fingerprint": key, "notebooks": {}, "seconds": {}}
    masters = sorted(course.source(assignment).glob("*.ipynb"))
    if not masters:
        raise ReferenceFailed(f"{assignment} has no master notebook in {course.source()}")
    for notebook in masters:
        expected, seconds = run_reference(course, assignment, notebook)
        results["notebooks"][notebook.stem] = expected
        results["seconds"][notebook.stem] = seconds
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    verdict.save_expected(path, results)
    return results


def load(course: Course, assignment: str) -> dict | None:
    """The cached results if present and current (no run), else None."""
    path = course.expected(assignment)
    try:
        cached = verdict.load_expected(path)
    except (OSError, ValueError, json.JSONDecodeError):
        return None
    return cached if cached.get("fingerprint") == fingerprint(course, assignment) else None
