"""Autograde many students concurrently, each in its own nbgrader process.

nbgrader grades one submission after another (its issue #174), and one broken submission can
stop the whole run. Here every student is one `nbgrader autograde --student` process; a
bounded pool runs them concurrently. They share the sqlite gradebook: nbgrader only touches it
briefly before and after executing a notebook, and sqlite serialises those writes; a worker
that still meets "database is locked" is retried.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

from dlcourse import preflight
from dlcourse.release import nbgrader, tool_env

STAGED_DIR = "staged"  # repaired copies of submitted/, what autograde reads
RETRIES = 2


@dataclass
class Outcome:
    student: str
    ok: bool
    seconds: float
    notes: list[str] = field(default_factory=list)
    log: str = ""


def backup_gradebook(course: Path) -> Path | None:
    db = course / "gradebook.db"
    if not db.exists():
        return None
    folder = course / "backups"
    folder.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = folder / f"gradebook-{stamp}.db"
    shutil.copy2(db, target)
    return target


def _timeout(course: Path) -> int:
    """The per-cell timeout nbgrader uses for this course (read from its config)."""
    from traitlets.config import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
    return int(config.Execute.get("timeout", 30))


def find_crashing_cell(path: Path, timeout: int) -> int | None:
    """Index of the cell whose execution kills the kernel, or None."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(path.parent)}},
    )
    saved = dict(os.environ)
    os.environ.update(tool_env(NBGRADER_EXECUTION="autograde"))
    try:
        with client.setup_kernel():
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                try:
                    client.execute_cell(cell, index)
                except DeadKernelError:
                    return index
                except Exception:  # noqa: BLE001 - timeouts and errors are nbgrader's job
                    continue
    except DeadKernelError:
        return None
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return None


def _autograde_one(course: Path, assignment: str, student: str) -> tuple[bool, str]:
    args = (
        "autograde",
        assignment,
        "--student",
        student,
        "--force",
        f"--CourseDirectory.submitted_directory={STAGED_DIR}",
    )
    for _ in range(RETRIES + 1):
        result = nbgrader(course, *args, check=False)
        log = result.stdout + result.stderr
        if "database is locked" not in log:
            break
        time.sleep(1)
    failed = result.returncode != 0 or "There was an error processing assignment" in log
    return not failed, log


def grade_student(
    course: Path, assignment: str, student: str, release: dict[str, nbformat.NotebookNode]
) -> Outcome:
    start = time.perf_counter()
    staged = preflight.stage(
        course / "submitted" / student / assignment,
        course / STAGED_DIR / student / assignment,
        student,
        release,
    )
    ok, log = _autograde_one(course, assignment, student)
    if not ok and "Kernel died" in log:
        for name in release:
            path = staged.folder / f"{name}.ipynb"
            index = find_crashing_cell(path, _timeout(course)) if path.exists() else None
            if index is None:
                continue
            reason = (
                f"This cell stopped the Python kernel during grading (for example with "
                f"os._exit or a crash in native code); it was not run so that the rest "
                f"of '{name}.ipynb' could be graded."
            )
            preflight.neutralise_cell(path, index, reason)
            staged.notes.append(
                f"cell {index} of '{name}.ipynb' crashed the kernel; it was "
                f"skipped and scored as failing, the rest was graded"
            )
        ok, log = _autograde_one(course, assignment, student)
    if "CellTimeoutError" in _autograded_text(course, assignment, student):
        staged.notes.append(
            "a cell ran past the per-cell time limit and was stopped "
            "(infinite loop?); the tests depending on it scored 0"
        )
    logs = course / "logs" / assignment
    logs.mkdir(parents=True, exist_ok=True)
    (logs / f"{student}.log").write_text(log)
    if not ok:
        staged.notes.append(f"autograding failed; see logs/{assignment}/{student}.log")
    return Outcome(student, ok, time.perf_counter() - start, staged.notes, log)


def _autograded_text(course: Path, assignment: str, student: str) -> str:
    folder = course / "autograded" / student / assignment
    return "".join(p.read_text(errors="replace") for p in folder.glob("*.ipynb"))


def autograde_all(
    course: Path,
    assignment: str,
    students: list[str],
    release: dict[str, nbformat.NotebookNode],
    workers: int | None = None,
    progress: Callable[[str], None] = print,
) -> list[Outcome]:
    """Grade every student with at most `workers` concurrent nbgrader processes."""
    workers = workers or os.cpu_count() or 1
    backup_gradebook(course)
    # nbgrader creates the gradebook tables on first use; do it once, not in every worker.
    nbgrader(course, "db", "student", "list", check=False)
    outcomes = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(grade_student, course, assignment, s, release) for s in students]
        for done, future in enumerate(as_completed(futures), 1):
            outcome = future.result()
            outcomes.append(outcome)
            bar = "#" * (20 * done // len(futures))
            status = "ok" if outcome.ok else "FAILED"
            progress(
                f"  [{bar:<20}] {done}/{len(futures)} {assignment} {outcome.student}: "
                f"{status} ({outcome.seconds:.1f} s)"
            )
            sys.stdout.flush()
    return sorted(outcomes, key=lambda o: o.student)
