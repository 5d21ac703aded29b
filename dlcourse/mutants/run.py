"""Grade every mutant of a worksheet's reference answers with its real hidden tests.

One Jupyter kernel per worksheet (the course's `python3` kernel spec, as nbval and nbgrader
use; no sandbox and no nbgrader: the code is ours) runs the setup cells once. Then, for each
exercise in notebook order, with the reference answers and tests of the exercises before it
already run:

1. `state.snapshot` records the kernel's state;
2. the reference answer and the cells after it (its test cells) are run: their probes are the
   expected values, exactly as `dlcourse.grader.reference` takes them from the reference run
   (`verdict.expected_from`);
3. the kernel is restored and the reference run again, and judged: it must pass (the control;
   a failure means the tests depend on something the restore does not restore);
4. for each mutant: restore, run the mutated answer and the same cells, and judge each test
   cell with `verdict.decide`, as `dlcourse.grader.decide.DecideVerdicts` does when grading:
   the mutant is killed when any of the exercise's test cells would score 0, including when
   a cell ran past its timeout (sized as grading sizes it) or the kernel died;
5. the reference is run and judged once more, after the last mutant.

A timeout or a dead kernel restarts the kernel and replays everything before the exercise.

Every cell runs as grading runs it (`dlcourse.grader.execute.kernel_source`): the test cells in
a scope of their own (`dlcourse.probe.run_test`), the setup cells with what they define kept
for the tests; the answers as written.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import run_sync

from dlcourse.grader import cells, verdict
from dlcourse.grader.execute import kernel_source
from dlcourse.mutants.operators import Mutant, mutants

SNAPSHOT = "from dlcourse.mutants import state as __s; __s.snapshot(globals()); del __s"
RESTORE = "from dlcourse.mutants import state as __s; __s.restore(globals()); del __s"
STARTUP_TIMEOUT = 120


@dataclass
class Outcome:
    mutant: Mutant
    killed: bool
    reason: str  # the first failure message, or why the mutant could not be judged
    seconds: float


@dataclass
class Exercise:
    grade_id: str
    source: str  # the master's answer cell, markers included
    block: list[nbformat.NotebookNode]  # the code cells after it, up to the next answer
    outcomes: list[Outcome] = field(default_factory=list)
    problem: str = ""  # why its mutants were not judged (the reference failed, ...)
    seconds: float = 0.0

    @property
    def tests(self) -> list[str]:
        return [cells.grade_id(c) for c in self.block if cells.is_test(c)]


@dataclass
class Worksheet:
    name: str
    exercises: list[Exercise]
    seconds: float = 0.0


class KernelGone(RuntimeError):
    """A cell ran past its timeout or the kernel died: the kernel was restarted."""


class Kernel:
    """A kernel that runs one cell at a time and returns it with its outputs."""

    def __init__(self, folder: Path, kernel_name: str) -> None:
        self._holder = nbformat.v4.new_notebook()
        self._client = NotebookClient(
            self._holder,
            kernel_name=kernel_name,
            allow_errors=True,
            interrupt_on_timeout=False,
            startup_timeout=STARTUP_TIMEOUT,
            resources={"metadata": {"path": str(folder)}},
        )

    def start(self) -> None:
        self._client.km = self._client.create_kernel_manager()
        self._client.start_new_kernel()
        self._client.start_new_kernel_client()

    def stop(self) -> None:
        client = self._client
        if client.km is not None and client.km.has_kernel:
            if client.kc is not None:
                client.kc.stop_channels()
            run_sync(client.km.shutdown_kernel)(now=True)

    def restart(self) -> None:
        self.stop()
        self.start()

    def run(self, source: str, timeout: float, metadata: dict | None = None):
        cell = nbformat.v4.new_code_cell(source, metadata=metadata or {})
        self._holder.cells = [cell]
        self._client.timeout = max(1, int(timeout))
        try:
            self._client.execute_cell(cell, 0)
        except (CellTimeoutError, DeadKernelError, TimeoutError) as err:
            self.restart()
            raise KernelGone(f"{type(err).__name__} (the kernel was restarted)") from err
        return cell


def exercises_of(master: nbformat.NotebookNode) -> tuple[list, list[Exercise]]:
    """(the code cells before the first answer, the exercises)."""
    setup: list = []
    found: list[Exercise] = []
    for cell in master.cells:
        if cell.cell_type != "code":
            continue
        if cells.is_answer(cell):
            found.append(Exercise(cells.grade_id(cell), cell.source, []))
        elif found:
            found[-1].block.append(cell)
        else:
            setup.append(cell)
    return setup, found


class Runner:
    def __init__(self, master_path: Path, *, timeout_factor: float, timeout_floor: float,
                 timeout_cap: float, kernel_name: str = "python3") -> None:  # fmt: skip
        self.path = master_path
        self.master = nbformat.read(master_path, as_version=4)
        self.kernel = Kernel(master_path.parent, kernel_name)
        self.factor, self.floor, self.cap = timeout_factor, timeout_floor, timeout_cap
        self.setup, self.exercises = exercises_of(self.master)
        self._done: list[Exercise] = []  # exercises whose reference now stands in the kernel

    def _timeout(self, reference_seconds: float | None) -> float:
        if reference_seconds is None:
            return self.cap
        return min(self.cap, max(self.floor, self.factor * reference_seconds))

    def _replay(self) -> None:
        """Everything before the current exercise, from a fresh kernel."""
        for cell in self.setup:
            self._must_pass(self.kernel.run(kernel_source(cell), self.cap), "setup")
        for ex in self._done:
            self._run_block(ex, cells.solution_text(ex.source), None)

    @staticmethod
    def _must_pass(cell, where: str) -> None:
        errors = [o for o in cell.outputs if o.get("output_type") == "error"]
        if errors:
            raise RuntimeError(
                f"{where} failed: {errors[0].get('ename')}: {errors[0].get('evalue')}"
            )

    def _run_block(self, ex: Exercise, answer: str, times: dict[str, float] | None):
        """Run an answer and the cells after it; (the executed cells, seconds per cell)."""
        ran, seconds = [], {}
        for i, cell in enumerate([None, *ex.block]):
            source = answer if cell is None else kernel_source(cell)
            key = ex.grade_id if cell is None else (cells.grade_id(cell) or str(i))
            start = time.monotonic()
            timeout = self._timeout(times.get(key) if times else None)
            executed = self.kernel.run(source, timeout, None if cell is None else cell.metadata)
            seconds[key] = time.monotonic() - start
            ran.append(executed)
        return ran, seconds

    def _judge(self, ex: Exercise, ran: list, expected: dict, answer: str) -> str | None:
        """None when every test cell of the exercise passes; else the first failure."""
        answered = cells.answered(self.master, {ex.grade_id: answer})
        for cell in ran[1:]:
            if not cells.is_test(cell):
                continue
            decision = verdict.decide_test_cell(cell, expected, answered)
            if not decision.passed:
                first = decision.messages[0] if decision.messages else "failed"
                return f"{cells.grade_id(cell)}: {first}"
        return None

    def _fresh(self) -> None:
        self.kernel.run(RESTORE, self.cap)

    def run_exercise(self, ex: Exercise, selected: list[Mutant]) -> None:
        start = time.monotonic()
        reference = cells.solution_text(ex.source)
        self.kernel.run(SNAPSHOT, self.cap)
        ran, times = self._run_block(ex, reference, None)
        try:
            expected = verdict.expected_from({"cells": ran})
        except ValueError as err:
            ex.problem = f"the reference fails its own tests here: {err}"
        if not ex.problem:
            self._fresh()
            ran, _ = self._run_block(ex, reference, times)
            if (failure := self._judge(ex, ran, expected, reference)) is not None:
                ex.problem = f"the reference, run again, is judged wrong: {failure}"
        if not ex.problem:
            for mutant in selected:
                ex.outcomes.append(self._grade(ex, mutant, expected, times))
            self._fresh()
            ran, _ = self._run_block(ex, reference, times)
            if (failure := self._judge(ex, ran, expected, reference)) is not None:
                ex.problem = f"after the mutants, the reference is judged wrong: {failure}"
        self._done.append(ex)
        ex.seconds = time.monotonic() - start

    def _grade(self, ex: Exercise, mutant: Mutant, expected: dict, times: dict) -> Outcome:
        start = time.monotonic()
        try:
            self._fresh()
            ran, _ = self._run_block(ex, mutant.source, times)
            failure = self._judge(ex, ran, expected, mutant.source)
        except KernelGone as gone:
            failure = str(gone)
            self._replay()
            self.kernel.run(SNAPSHOT, self.cap)
        return Outcome(mutant, failure is not None, failure or "", time.monotonic() - start)


def run_worksheet(
    master_path: Path,
    *,
    only: set[str] | None = None,
    limit: int | None = None,
    timeouts: tuple[float, float, float] = (10.0, 15.0, 60.0),
    make: Callable[[str, str], list[Mutant]] = mutants,
) -> Worksheet:
    """Grade the mutants of `master_path`'s exercises (those in `only`, if given; at most
    `limit` per exercise, spread over the list, if given). `make(grade_id, answer cell)`
    makes an exercise's mutants; `timeouts` are grading's (factor, floor, cap) per cell."""
    start = time.monotonic()
    factor, floor, cap = timeouts
    runner = Runner(master_path, timeout_factor=factor, timeout_floor=floor, timeout_cap=cap)
    runner.kernel.start()
    try:
        runner._replay()
        judged = []
        for ex in runner.exercises:
            if only is not None and ex.grade_id not in only:
                # still run its reference: later exercises may use it
                runner._run_block(ex, cells.solution_text(ex.source), None)
                runner._done.append(ex)
                continue
            runner.run_exercise(ex, sample(make(ex.grade_id, ex.source), limit))
            judged.append(ex)
    finally:
        runner.kernel.stop()
    return Worksheet(master_path.stem, judged, time.monotonic() - start)


def sample(made: list[Mutant], limit: int | None) -> list[Mutant]:
    """At most `limit` mutants, evenly spread over the list (a fixed choice)."""
    if limit is None or len(made) <= limit:
        return made
    step = len(made) / limit
    return [made[int(i * step)] for i in range(limit)]
