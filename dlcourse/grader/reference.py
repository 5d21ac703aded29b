"""The reference run: the master notebooks (solutions and hidden tests) executed exactly as a
submission is graded, in the same sandbox and environment.

It is the canary and the source of truth at once. If the reference solution does not pass
every test here, the grading environment is broken (a missing package, no data, a wrong
setting) and grading the class would hand out wrong zeros: grading is refused, with the
reason. Otherwise the values its hidden tests recorded become the expected values every
submission is compared with (`dlcourse.grader.verdict`), and its cell times size the per-cell
timeouts. The result is cached per assignment in the grader's private area, readable by the
instructor only, keyed by the master notebooks and everything in the grading environment that
can make a correct answer fail (`dlcourse.grader.environment`: Python and package versions,
the course's code, the kernel spec, the data sets, the sandbox, the kernel's environment).

A grading run also checks the environment while it grades: when a locked cell (setup the
student cannot edit) fails in a submission, `verify` runs the reference again before that
submission's grades are saved; if the reference fails too, the environment is broken and
nothing of that submission is written.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat

from dlcourse.grader import cells, environment, verdict
from dlcourse.grader.course import Course

FORMAT = 2
# `verify` accepts a reference run that passed after this process started (a grading child
# lives for one submission), in the same environment.
_STARTED = time.time()


class ReferenceFailed(RuntimeError):
    """The reference solution does not get full marks in this grading environment."""


def fingerprint(course: Course, assignment: str) -> str:
    """The master copy (every file of it: notebooks, helpers, small data), the course's
    nbgrader_config.py (limits, timeouts) and the grading environment."""
    digest = hashlib.sha256(f"format {FORMAT}".encode())
    folder = course.source(assignment)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    digest.update((course.root / "nbgrader_config.py").read_bytes())
    digest.update(environment.fingerprint().encode())
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


@contextlib.contextmanager
def _locked(course: Course, assignment: str) -> Iterator[None]:
    """One reference run per assignment at a time (concurrent children, Dask workers)."""
    path = course.expected(assignment).with_suffix(".lock")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _cached(course: Course, assignment: str, key: str) -> dict | None:
    try:
        cached = verdict.load_expected(course.expected(assignment))
    except (OSError, ValueError):
        return None
    return cached if cached.get("fingerprint") == key else None


def ensure(course: Course, assignment: str, *, force: bool = False) -> dict:
    """The cached reference results for `assignment`, running the reference when stale.

    {"fingerprint", "verified": epoch seconds of the run, "notebooks": {name: {grade_id:
    expectation}}, "seconds": {name: {...}}}
    Raises ReferenceFailed when the reference solution does not pass here.
    """
    key = fingerprint(course, assignment)
    if not force and (cached := _cached(course, assignment, key)) is not None:
        return cached
    with _locked(course, assignment):  # another process may have run it meanwhile
        if not force and (cached := _cached(course, assignment, key)) is not None:
            return cached
        return _run(course, assignment, key)


def verify(course: Course, assignment: str) -> dict:
    """Like `ensure`, but the reference must have passed in this environment since this process
    started: an older result is checked by running the reference again."""
    key = fingerprint(course, assignment)
    with _locked(course, assignment):
        cached = _cached(course, assignment, key)
        if cached is not None and cached.get("verified", 0) >= _STARTED:
            return cached
        return _run(course, assignment, key)


def _run(course: Course, assignment: str, key: str) -> dict:
    results: dict = {"fingerprint": key, "verified": 0, "notebooks": {}, "seconds": {}}
    masters = sorted(course.source(assignment).glob("*.ipynb"))
    if not masters:
        raise ReferenceFailed(f"{assignment} has no master notebook in {course.source()}")
    for notebook in masters:
        expected, seconds = run_reference(course, assignment, notebook)
        results["notebooks"][notebook.stem] = expected
        results["seconds"][notebook.stem] = seconds
    results["verified"] = time.time()
    path = course.expected(assignment)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    verdict.save_expected(path, results)
    return results


def load(course: Course, assignment: str) -> dict | None:
    """The cached results if present and current (no run), else None."""
    return _cached(course, assignment, fingerprint(course, assignment))
