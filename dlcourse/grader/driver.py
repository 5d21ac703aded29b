"""Autograde a class concurrently: one `dlcourse.grader.child` process per student.

nbgrader grades one submission after another (its issue #174), and one broken submission can
stop the whole run. Here each student is graded alone, on a repaired copy (`preflight`), in a
process of its own; a bounded pool runs them concurrently. One wall clock per student
(`GradingLimits.wall_clock`) covers every run of their submission: the autograde, the crash
locator, the re-grade, and the retry alone. A setup cell that times out or whose kernel dies
is the grader's problem (a starved machine): nothing is written, and that student is graded
again alone after the parallel run; if it stops again, the submission could not be graded
(no grade, a note for the instructor), never a 0. Whatever goes wrong with one student
becomes that student's note: grading a class is total.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from dlcourse.grader import cells, gradebook, intake, preflight, reference, sandbox, verdict
from dlcourse.grader.course import Course
from dlcourse.grader.crash import SetupCellStopped, is_setup_cell, neutralise_cell
from dlcourse.grader.execute import OUTPUT_REMOVED, TIME_LIMIT_ERROR
from dlcourse.grader.quoting import printable, quoted
from dlcourse.grader.runner import tool_env

RETRIES = 2  # a sqlite gradebook can be locked by another worker for a moment
LOG_LIMIT = 200_000  # bytes of nbgrader's own log kept per student
# What a child reports when the grading environment, not the submission, failed: the
# reference solution fails here too (`reference.verify`), or the sandbox cannot start.
ENVIRONMENT_ERRORS = frozenset({"ReferenceFailed", "SandboxUnavailable"})


class GradingEnvironmentBroken(RuntimeError):
    """The environment failed while grading: nothing of the run was kept."""


@dataclass
class Outcome:
    student: str
    ok: bool
    seconds: float
    notes: list[str] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    timed_out: bool = False
    # Why this run stopped for the grader's reason, not the student's (a setup cell timed out
    # or its kernel died): nothing was written, and the student is graded again alone.
    retry_alone: str = ""

    def to_json(self) -> dict:
        return self.__dict__.copy()

    @property
    def environment_failure(self) -> str | None:
        """The environment's failure that stopped this student's grading, if any."""
        for failure in self.failures:
            if failure.get("error") in ENVIRONMENT_ERRORS:
                return f"{failure['error']}: {failure.get('message', '')}"
        return None


@dataclass(frozen=True)
class GradingLimits:
    cell_timeout: int
    sandbox: sandbox.Limits

    def wall_clock(self, notebooks: int) -> int:
        """The one outer limit for one student: every run of their submission together (the
        autograde, the crash locator, the re-grade and the retry alone), kernel start-ups
        included; `Limits.grading_seconds` when set (480 s for one notebook by default)."""
        if self.sandbox.grading_seconds:
            return self.sandbox.grading_seconds
        return notebooks * (self.sandbox.notebook_seconds + 120) + 60


@dataclass
class Budget:
    """A student's wall clock, spent across runs (and across the parallel run and the retry
    alone: `spent` is what earlier runs already used)."""

    seconds: int
    spent_before: float = 0.0
    started: float = field(default_factory=time.monotonic)

    def spent(self) -> float:
        return self.spent_before + time.monotonic() - self.started

    def left(self) -> float:
        return max(0.0, self.seconds - self.spent())

    def note(self) -> str:
        return (
            f"grading stopped after {self.seconds} s, the limit for the whole submission (all "
            f"its runs together: grading, finding a crashing cell, grading again); it was not "
            f"graded: ask your instructor"
        )


def grading_limits(course: Course, assignment: str) -> GradingLimits:
    execute = course.config.get("SandboxedExecute", {})
    base = sandbox.Limits(**execute.get("limits", {}))
    limits = sandbox.limits_for(assignment, base, execute.get("per_assignment", {}))
    return GradingLimits(int(course.config.Execute.get("timeout", 30)), limits)


def backup_gradebook(course: Course) -> Path | None:
    """SQLite: a copy of the file; PostgreSQL: pg_dump (dlcourse.grader.gradebook)."""
    return gradebook.backup(course)


def run_limited(
    course: Course, module: str, args: list[str], log_path: Path, seconds: float, append: bool
) -> tuple[dict | None, bool]:
    """`python -m module COURSE *args RESULT` in a session of its own, killed (the whole
    process group) after `seconds`; (its JSON result or None, whether it was killed)."""
    log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(prefix="dlcourse-result-") as tmp:
        result_path = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", module, str(course.root), *args, str(result_path)]
        timed_out = False
        with log_path.open("ab" if append else "wb") as log:
            proc = subprocess.Popen(
                cmd,
                cwd=course.root,
                env=tool_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                proc.wait(timeout=max(0.0, seconds))
            except subprocess.TimeoutExpired:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        _truncate(log_path)
        try:
            return json.loads(result_path.read_text()), timed_out
        except (OSError, ValueError):
            return None, timed_out


def autograde_one(course: Course, assignment: str, student: str, wall_clock: float) -> Outcome:
    """Run the child for one student, within `wall_clock` seconds all tries together; its
    JSON result, or a wall-clock/total failure."""
    start = time.perf_counter()
    deadline = time.monotonic() + wall_clock
    log_path = course.log(assignment, student)
    result: dict = {}
    timed_out = False
    for _ in range(RETRIES + 1):
        left = deadline - time.monotonic()
        found, timed_out = run_limited(
            course, "dlcourse.grader.child", [assignment, student], log_path, left, append=False
        )
        result = found or {"ok": False, "failures": [], "db_locked": False}
        if timed_out or not result.get("db_locked"):
            break
        time.sleep(1)
    return Outcome(
        student,
        bool(result.get("ok")) and not timed_out,
        time.perf_counter() - start,
        failures=list(result.get("failures", [])),
        timed_out=timed_out,
    )


def _truncate(path: Path) -> None:
    if path.stat().st_size > LOG_LIMIT:
        with path.open("r+b") as fh:
            fh.truncate(LOG_LIMIT)
            fh.seek(LOG_LIMIT)
            fh.write(b"\n[log truncated by the grader]\n")
    path.chmod(0o600)


# What the autograded notebook shows (error names the grader wrote) -> the note for the student.
OUTPUT_NOTES = {
    "CellTimeoutError": (
        "a cell ran past the per-cell time limit and was stopped (infinite loop?); "
        "the checks it kept from running scored 0"
    ),
    TIME_LIMIT_ERROR: (
        "the notebook ran past its time limit; the cells after that point were not run "
        "and their tests scored 0"
    ),
    "TestFailed": "some tests failed; each failing test says why in your feedback",
    "MemoryError": "a cell ran out of memory (the grader's limit); the checks it kept from "
    "running scored 0",
}


def locked_failures(folder: Path) -> list[str]:
    """Locked code cells (setup the student cannot edit) that failed: not the student's fault."""
    failed = []
    for path in sorted(folder.glob("*.ipynb")):
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception:  # noqa: BLE001 - reported elsewhere
            continue
        failed += cells.failed_setup_cells(nb)
    return failed


def output_notes(folder: Path) -> list[str]:
    """Notes from the error outputs and the grader's own markers in the autograded notebooks."""
    enames: set[str] = set()
    removed = False
    for path in sorted(folder.glob("*.ipynb")):
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception:  # noqa: BLE001 - not ours to judge here; graded as it is
            continue
        for cell in nb.cells:
            if cells.is_test(cell) and verdict.partial_score(cell) is not None:
                enames.add(verdict.FAILED)  # some checks failed: the grader's partial score
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    enames.add(str(output.get("ename")))
                elif OUTPUT_REMOVED in str(output.get("text", ""))[:200]:
                    removed = True
                if cells.is_test(cell):
                    enames.update(verdict.stopped_by(output))
    notes = [note for ename, note in OUTPUT_NOTES.items() if ename in enames]
    if removed:
        notes.append("an output too large to keep (a huge image or text) was removed")
    return notes


def grade_student(
    course: Course,
    assignment: str,
    student: str,
    release: dict[str, nbformat.NotebookNode],
    spent: float = 0.0,
    alone: bool = False,
) -> Outcome:
    """Stage, autograde, and if a cell killed the kernel, skip it and grade the rest, all
    within the student's one wall-clock budget (`spent` of it used by earlier runs). A setup
    cell that timed out or whose kernel died is the grader's problem: the outcome asks for a
    retry alone (`retry_alone`); in that retry (`alone`), it means "could not be graded"."""
    start = time.perf_counter()
    try:
        limits = grading_limits(course, assignment)
        budget = Budget(limits.wall_clock(len(release)), spent)
        course.staged().mkdir(exist_ok=True, mode=0o700)
        staged = preflight.stage(
            course.submitted(student, assignment),
            course.staged(student, assignment),
            student,
            release,
            course.release(assignment),
            intake.Intake.of(course, assignment, student),
        )
        graded = course.autograded(student, assignment)
        if alone:  # the copy set aside by the parallel run is the student's last graded one
            shutil.rmtree(graded, ignore_errors=True)
        else:
            _set_aside(graded, set_aside(course, assignment, student))
        outcome = autograde_one(course, assignment, student, budget.left())
        stopped = _setup_stopped(outcome)
        if not (outcome.ok or outcome.timed_out or outcome.environment_failure or stopped):
            found = _skip_crashing_cells(course, assignment, student, release, staged, budget)
            if found:  # the kernel died in a setup cell
                stopped = found
            elif found is None or budget.left() <= 0:
                outcome.timed_out = True
            else:
                outcome = autograde_one(course, assignment, student, budget.left())
                stopped = _setup_stopped(outcome)
        if stopped and not outcome.environment_failure:
            outcome.ok, outcome.retry_alone = False, stopped
            outcome.notes = staged.notes + [_not_graded(stopped) if alone else stopped]
            outcome.seconds = budget.spent() - spent
            return outcome
        if outcome.environment_failure:  # the run is undone as a whole (autograde_all)
            failure = printable(outcome.environment_failure, 300)
            outcome.notes = [f"not graded: the grading environment failed ({failure})"]
            outcome.seconds = budget.spent() - spent
            return outcome
        graded_by_nbgrader = outcome.ok
        outcome.notes = staged.notes + output_notes(graded)
        if failed := locked_failures(graded):
            outcome.ok = False
            outcome.notes.append(
                f"a cell you cannot edit failed while grading ({', '.join(failed)}): this is a "
                f"problem of the grading environment or of code run before it, not a verdict "
                f"on your answers; an instructor will look at it"
            )
        if outcome.timed_out:
            outcome.notes = staged.notes + [budget.note()]
        elif not graded_by_nbgrader:
            errors = ", ".join(sorted({f["error"] for f in outcome.failures})) or "no result"
            outcome.notes = staged.notes + [
                f"autograding failed ({printable(errors, 200)}): your submission could not be "
                f"graded; an instructor will look at it"
            ]
    except Exception as err:  # noqa: BLE001 - one student's failure never stops the class
        outcome = Outcome(
            student,
            False,
            0.0,
            notes=[f"could not be graded: {type(err).__name__}: {printable(err, 300)}"],
        )
    outcome.seconds = time.perf_counter() - start
    return outcome


def _setup_stopped(outcome: Outcome) -> str:
    """Why a run stopped on a setup cell that ran past its time limit (`decide`), or ""."""
    for failure in outcome.failures:
        if failure.get("error") == SetupCellStopped.__name__:
            return printable(failure.get("message", ""), 300)
    return ""


def _skip_crashing_cells(
    course: Course,
    assignment: str,
    student: str,
    release: dict[str, nbformat.NotebookNode],
    staged: preflight.Staged,
    budget: Budget,
) -> str | None:
    """Find, in each notebook, the cell that killed the kernel and neutralise it, with a note;
    "why" instead when that cell is a setup cell (the grader's problem: nothing is changed).
    None when the budget ran out meanwhile (`budget.left()` says so)."""
    for name in release:
        path = staged.folder / f"{name}.ipynb"
        if not path.exists():
            continue
        found, killed = run_limited(
            course,
            "dlcourse.grader.crash",
            [assignment, str(path)],
            course.log(assignment, student),
            budget.left(),
            append=True,
        )
        if killed:
            return None
        index = (found or {}).get("cell")
        if not isinstance(index, int):
            continue
        if (setup := is_setup_cell(path, index)) is not None:
            return f"the kernel died in the course's setup cell {quoted(setup)} of '{name}.ipynb'"
        neutralise_cell(
            path,
            index,
            "This cell stopped the Python kernel or cut it off from the grader (for "
            "example os._exit, a fork bomb, a crash in native code or a resource "
            f"limit); it was not run so that the rest of '{name}.ipynb' could be graded.",
        )
        staged.notes.append(
            f"cell {index} of '{name}.ipynb' crashed the kernel or cut it off from the "
            f"grader; it was skipped and scored as failing, the rest was graded"
        )
    return ""


def _not_graded(why: str) -> str:
    """The note for a student whose setup cell stopped beside other students and alone."""
    return (
        f"could not be graded: {why}, both while graded beside other students and again "
        f"alone. This is a problem of the grading machine (overloaded?) or of code run before "
        f"that cell, not a verdict on your answers: no grade was written for this run, and an "
        f"instructor will look at it"
    )


def set_aside(course: Course, assignment: str, student: str) -> Path:
    """Where a student's last graded copy waits while a run decides whether to keep it."""
    return course.private / "previous" / assignment / student


def _set_aside(folder: Path, aside: Path) -> None:
    """Move the last graded copy out of nbgrader's way, to put it back if the environment
    fails (nbgrader removes it before grading and after a failure); kept until the run is
    decided (`autograde_all`)."""
    shutil.rmtree(aside, ignore_errors=True)  # never a copy from an earlier run
    if folder.is_dir():
        aside.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.replace(folder, aside)


def _put_back(aside: Path | None, folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    if aside is not None:
        os.replace(aside, folder)


def autograde_all(
    course: Course,
    assignment: str,
    students: list[str],
    release: dict[str, nbformat.NotebookNode],
    workers: int | None = None,
    progress: Callable[[str], None] = print,
    executor=None,
) -> list[Outcome]:
    """Grade every student with at most `workers` concurrent child processes, or, with an
    `executor` (`dlcourse.grader.cluster.DaskExecutor`), one task per student on a cluster."""
    sandbox.protections.cache_clear()  # probed again for every run: the machine may change
    reason = sandbox.refusal()
    if reason:
        raise sandbox.SandboxUnavailable(reason)
    if executor is not None:
        executor.check(course)  # before the reference run: refuse early (e.g. SQLite)
    workers = workers or os.cpu_count() or 1
    progress(sandbox.protections().summary())
    if warning := sandbox.protections().warning():
        progress(f"  {warning}")
    # The canary: the reference solution, graded here first, must score full marks.
    start = time.perf_counter()
    reference.ensure(course, assignment)
    seconds = time.perf_counter() - start
    progress(f"  the reference solution passes in this grading environment ({seconds:.0f} s)")
    backup = backup_gradebook(course)
    # nbgrader creates the gradebook tables on first use; do it once, not in every worker.
    gradebook.create(course)
    outcomes = []
    start = time.perf_counter()
    if executor is None:
        results = _local(course, assignment, students, release, workers)
        where = f"{workers} worker(s)"
    else:  # pluggable executor: yields each student's Outcome as it completes
        results = executor.grade(course, assignment, students, release, progress)
        where = executor.describe()
    for done, outcome in enumerate(results, 1):
        outcomes.append(outcome)
        bar = "#" * (20 * done // len(students))
        status = "ok" if outcome.ok else "to grade again alone" if outcome.retry_alone else "FAILED"
        progress(
            f"  [{bar:<20}] {done}/{len(students)} {assignment} {outcome.student}: "
            f"{status} ({outcome.seconds:.1f} s)"
        )
        sys.stdout.flush()
    outcomes = _retry_alone(course, assignment, outcomes, release, progress)
    broken = [o for o in outcomes if o.environment_failure]
    if not broken and any(not o.ok for o in outcomes):
        # Some submissions could not be graded (a kernel that would not start, a grading
        # process that died): is it them, or the environment? The reference decides, now.
        try:
            reference.ensure(course, assignment, force=True)
        except reference.ReferenceFailed as err:
            for outcome in outcomes:
                if not outcome.ok:
                    outcome.failures.append({"error": "ReferenceFailed", "message": str(err)})
            broken = [o for o in outcomes if o.environment_failure]
    if broken:
        _undo(course, assignment, students, backup)
        where = f"{broken[0].student}: {broken[0].environment_failure[:500]}"
        raise GradingEnvironmentBroken(
            f"the grading environment failed while grading {len(broken)} of {len(outcomes)} "
            f"submission(s) ({where}); the gradebook and the graded copies were put back as "
            f"they were before this run"
        )
    for outcome in outcomes:  # not graded: the last graded copy stays as it was
        if outcome.retry_alone:
            aside = set_aside(course, assignment, outcome.student)
            _put_back(
                aside if aside.is_dir() else None, course.autograded(outcome.student, assignment)
            )
    for student in students:
        shutil.rmtree(set_aside(course, assignment, student), ignore_errors=True)
    failed = [o.student for o in outcomes if not o.ok]
    noted = sum(bool(o.notes) for o in outcomes)
    progress(
        f"  {assignment}: {len(outcomes) - len(failed)} graded, {len(failed)} failed"
        f"{' (' + ', '.join(sorted(failed)) + ')' if failed else ''}, {noted} with notes "
        f"for the report; {time.perf_counter() - start:.0f} s with {where}"
    )
    return sorted(outcomes, key=lambda o: o.student)


def _retry_alone(
    course: Course,
    assignment: str,
    outcomes: list[Outcome],
    release: dict[str, nbformat.NotebookNode],
    progress: Callable[[str], None],
) -> list[Outcome]:
    """Grade again, one at a time after the parallel run, every student whose run stopped for
    the grader's reason (a setup cell that timed out or whose kernel died, typically a starved
    machine) or on an environment failure, within what is left of each one's budget. An
    environment failure that happens again alone is the environment's: the rest are left."""
    retried = []
    for outcome in outcomes:
        why = outcome.retry_alone or outcome.environment_failure
        if not why or any(o.environment_failure for o in retried):
            retried.append(outcome)
            continue
        progress(f"  {assignment} {outcome.student}: graded again, alone ({printable(why, 200)})")
        again = grade_student(
            course, assignment, outcome.student, release, spent=outcome.seconds, alone=True
        )
        status = "ok" if again.ok else "could not be graded" if again.retry_alone else "FAILED"
        progress(f"  {assignment} {outcome.student}: {status} alone ({again.seconds:.1f} s)")
        retried.append(again)
    return retried


def _undo(course: Course, assignment: str, students: list[str], backup: Path | None) -> None:
    """A broken run writes nothing: every graded copy and the gradebook as they were."""
    for student in students:
        aside = set_aside(course, assignment, student)
        _put_back(aside if aside.is_dir() else None, course.autograded(student, assignment))
    if backup is None:
        if not gradebook.is_server(course.db_url):  # there was no gradebook before this run
            gradebook.sqlite_path(course).unlink(missing_ok=True)
            return
        raise GradingEnvironmentBroken(
            "the grading environment failed, and the gradebook could not be put back (no "
            "backup of this kind of database): check it before releasing feedback"
        )
    try:
        gradebook.restore(course, backup)
    except gradebook.BackupFailed as err:
        raise GradingEnvironmentBroken(
            f"the grading environment failed, and the gradebook could NOT be put back from "
            f"{backup} ({err}): restore it from there before releasing feedback"
        ) from err


def _local(course, assignment, students, release, workers) -> Iterator[Outcome]:
    """The default: a thread pool of `workers`, each running one student's child process."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(grade_student, course, assignment, s, release) for s in students]
        for future in as_completed(futures):
            yield future.result()
