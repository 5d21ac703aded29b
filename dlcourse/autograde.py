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
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from dlcourse import preflight, sandbox
from dlcourse.release import nbgrader, tool_env
from dlcourse.safe_execute import INTEGRITY_ERROR, OUTPUT_REMOVED, TIME_LIMIT_ERROR

WALL_CLOCK_MESSAGE = "dlcourse: grading stopped: wall-clock limit for the submission"
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


@dataclass(frozen=True)
class GradingLimits:
    cell_timeout: int
    sandbox: sandbox.Limits

    def wall_clock(self, notebooks: int) -> int:
        """Outer limit for one `nbgrader autograde --student` run (kernel start-ups included)."""
        return notebooks * (self.sandbox.notebook_seconds + 120) + 60


def grading_limits(course: Path, assignment: str) -> GradingLimits:
    """The per-cell timeout and sandbox limits this course's nbgrader_config.py sets."""
    from traitlets.config import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
    execute = config.get("SandboxedExecute", {})
    base = sandbox.Limits(**execute.get("limits", {}))
    limits = sandbox.limits_for(assignment, base, execute.get("per_assignment", {}))
    return GradingLimits(int(config.Execute.get("timeout", 30)), limits)


def find_crashing_cell(path: Path, limits: GradingLimits) -> int | None:
    """Index of the cell that breaks grading: it kills the kernel (os._exit, a native crash,
    a resource limit) or cuts it off from the grader (a fork bomb's children garble the
    kernel's messages). Ordinary errors and timeouts are nbgrader's job, as when it grades."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=limits.cell_timeout,
        kernel_name="python3",
        allow_errors=True,
        interrupt_on_timeout=True,
        error_on_timeout={"ename": "CellTimeoutError", "evalue": "", "traceback": []},
        raise_on_iopub_timeout=True,
        resources={"metadata": {"path": str(path.parent)}},
        kernel_manager_class=sandbox.SandboxedKernelManager,  # student code: sandboxed
    )
    client.km = client.create_kernel_manager()
    client.km.limits = limits.sandbox
    saved = dict(os.environ)
    os.environ.update(tool_env(NBGRADER_EXECUTION="autograde"))
    try:
        # Only the cell index matters here; the kernel's own log lines would be noise.
        with client.setup_kernel(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                try:
                    client.execute_cell(cell, index)
                except (DeadKernelError, CellTimeoutError):
                    return index
    except DeadKernelError:
        return None
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return None


def autograde_one(course: Path, assignment: str, student: str, wall_clock: int) -> tuple[bool, str]:
    args = (
        "autograde",
        assignment,
        "--student",
        student,
        "--force",
        f"--CourseDirectory.submitted_directory={STAGED_DIR}",
    )
    for _ in range(RETRIES + 1):
        try:
            result = nbgrader(course, *args, check=False, timeout=wall_clock)
        except subprocess.TimeoutExpired as err:  # nbgrader and its sandboxed kernel are gone
            output = "".join(_text(part) for part in (err.stdout, err.stderr))
            return False, f"{output}\n{WALL_CLOCK_MESSAGE}\n"
        log = result.stdout + result.stderr
        if "database is locked" not in log:
            break
        time.sleep(1)
    failed = result.returncode != 0 or "There was an error processing assignment" in log
    return not failed, log


def _text(data: bytes | str | None) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else data or ""


# What the autograded notebook shows -> the note the student reads.
OUTPUT_NOTES = {
    "CellTimeoutError": (
        "a cell ran past the per-cell time limit and was stopped (infinite loop?); "
        "the tests depending on it scored 0"
    ),
    TIME_LIMIT_ERROR: (
        "the notebook ran past its time limit; the cells after that point were not run "
        "and their tests scored 0"
    ),
    INTEGRITY_ERROR: (
        "your code replaced functions the tests rely on (for example numpy.testing "
        "helpers) or changed how IPython runs cells; the tests run after that scored 0"
    ),
    "MemoryError": "a cell ran out of memory (the grader's limit); its tests scored 0",
    OUTPUT_REMOVED: "an output too large to keep (a huge image or text) was removed",
}


def grade_student(
    course: Path, assignment: str, student: str, release: dict[str, nbformat.NotebookNode]
) -> Outcome:
    start = time.perf_counter()
    limits = grading_limits(course, assignment)
    wall_clock = limits.wall_clock(len(release))
    staged = preflight.stage(
        course / "submitted" / student / assignment,
        course / STAGED_DIR / student / assignment,
        student,
        release,
    )
    ok, log = autograde_one(course, assignment, student, wall_clock)
    if not ok and WALL_CLOCK_MESSAGE not in log:
        for name in release:
            path = staged.folder / f"{name}.ipynb"
            index = find_crashing_cell(path, limits) if path.exists() else None
            if index is None:
                continue
            reason = (
                f"This cell stopped the Python kernel or cut it off from the grader (for "
                f"example os._exit, a fork bomb, a crash in native code or a resource "
                f"limit); it was not run so that the rest of '{name}.ipynb' could be graded."
            )
            preflight.neutralise_cell(path, index, reason)
            staged.notes.append(
                f"cell {index} of '{name}.ipynb' crashed the kernel or cut it off from the "
                f"grader; it was skipped and scored as failing, the rest was graded"
            )
        ok, log = autograde_one(course, assignment, student, wall_clock)
    graded = _autograded_text(course, assignment, student)
    staged.notes += [note for marker, note in OUTPUT_NOTES.items() if marker in graded]
    logs = course / "logs" / assignment
    logs.mkdir(parents=True, exist_ok=True)
    (logs / f"{student}.log").write_text(log)
    if WALL_CLOCK_MESSAGE in log:
        staged.notes.append(
            f"grading stopped after {wall_clock} s, the limit for the whole submission; "
            f"it was not graded: ask your instructor"
        )
    elif not ok:
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
    progress(sandbox.protections().summary())
    if sandbox.protections().off:
        progress("  WARNING: student code runs with the protections above switched off")
    backup_gradebook(course)
    # nbgrader creates the gradebook tables on first use; do it once, not in every worker.
    nbgrader(course, "db", "student", "list", check=False)
    outcomes = []
    start = time.perf_counter()
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
    failed = [o.student for o in outcomes if not o.ok]
    noted = sum(bool(o.notes) for o in outcomes)
    progress(
        f"  {assignment}: {len(outcomes) - len(failed)} graded, {len(failed)} failed"
        f"{' (' + ', '.join(sorted(failed)) + ')' if failed else ''}, {noted} with notes "
        f"for the report; {time.perf_counter() - start:.0f} s with {workers} worker(s)"
    )
    return sorted(outcomes, key=lambda o: o.student)
