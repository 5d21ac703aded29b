"""nbgrader's Execute step, made safe for untrusted submissions.

`SandboxedExecute` replaces nbgrader's `Execute` in `Autograde.autograde_preprocessors`
(see nbgrader_config.py). It

- starts the kernel through `dlcourse.grader.sandbox.SandboxedKernelManager`, with the limits
  of the assignment being graded;
- gives each cell that the reference solution ran (`dlcourse.grader.reference`) a timeout
  sized from the reference's own time for it (`timeout_factor` times, at least
  `timeout_floor` seconds, at most nbgrader's `timeout`), so a runaway cell costs seconds,
  not minutes;
- drops any single output larger than `max_output_kb` (a generated 50 MB image, one endless
  line), leaving a line that says so;
- enforces a wall-clock limit for the whole notebook: once it is spent, the remaining cells
  are not run and carry an error saying why;
- stops the kernel at once when the notebook is done: a grading kernel has nothing to save,
  and a student's `atexit` hooks never run (waiting for them cost 1-2 s per notebook);
- keeps nbclient's trace of every kernel message (DEBUG, dozens of lines per cell) out of the
  log unless `trace_kernel_messages` is set: formgrader runs autograde at DEBUG and shows the
  instructor everything it logged.

It decides nothing about grades: `dlcourse.grader.decide` does, outside the kernel.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import run_sync
from nbformat import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Bool, Dict, Float, Int, default

from dlcourse.grader.sandbox import Limits, SandboxedKernelManager, limits_for, protections

TIME_LIMIT_ERROR = "NotebookTimeLimitError"
OUTPUT_REMOVED = "output removed by the grader"


def _size(content: dict) -> int:
    """Bytes an output would take, without serialising it."""
    if "text" in content:
        return len(str(content["text"]))
    data = content.get("data") or {}
    return sum(len(str(v)) for v in data.values()) + len(str(content.get("metadata", "")))


def error_output(ename: str, message: str) -> NotebookNode:
    return NotebookNode(
        output_type="error",
        ename=ename,
        evalue=message,
        traceback=[f"\x1b[0;31m{ename}\x1b[0m: {message}"],
    )


class _WithoutDebug(logging.LoggerAdapter):
    def isEnabledFor(self, level: int) -> bool:
        return level > logging.DEBUG and super().isEnabledFor(level)


class SandboxedExecute(Execute):
    limits = Dict(
        help="Default sandbox limits (keys of dlcourse.grader.sandbox.Limits) for every assignment."
    ).tag(config=True)
    per_assignment = Dict(
        help="Limits for one assignment, e.g. {'ws05_cnn': {'memory_mb': 8192}}."
    ).tag(config=True)
    max_output_kb = Int(
        2048,
        help="Largest single output (a stream, an image, a value) kept in the graded notebook, "
        "in KB; nbgrader's LimitOutput only counts lines.",
    ).tag(config=True)
    max_cell_kb = Int(4096, help="Outputs kept per cell, in KB, all together.").tag(config=True)
    max_notebook_kb = Int(
        16384, help="Outputs kept per notebook, in KB; later ones are dropped as they arrive."
    ).tag(config=True)
    max_error_chars = Int(
        4000, help="An error's message and each traceback line are cut to this length."
    ).tag(config=True)
    minimum_cell_timeout = Int(
        1, help="Seconds a cell gets when the notebook's time is almost spent."
    ).tag(config=True)
    timeout_factor = Float(
        10.0, help="A cell the reference solution ran gets this many times its reference time."
    ).tag(config=True)
    timeout_floor = Int(
        15, help="... but never less than this many seconds (a loaded machine is slower)."
    ).tag(config=True)
    trace_kernel_messages = Bool(
        False, help="Log every kernel message at DEBUG (nbclient's trace), for debugging."
    ).tag(config=True)
    locate_crash = Bool(
        False,
        help="Remember the index of the cell that killed the kernel or cut it off "
        "(`crashed_cell`) before the error propagates; used by the crash locator.",
    )

    @default("shutdown_kernel")
    def _shutdown_kernel_default(self) -> str:
        return "immediate"

    @default("log")
    def _log_default(self):
        log = super()._log_default()
        return log if self.trace_kernel_messages else _WithoutDebug(log, {})

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs["kernel_manager_class"] = SandboxedKernelManager
        super().__init__(*args, **kwargs)
        self.timeout_func = self._cell_timeout
        self._deadline = float("inf")
        self._active = Limits()
        self._reference_seconds: dict[str, float] = {}
        self.crashed_cell: int | None = None
        self._notebook_bytes = 0
        self._cell_bytes = 0
        self._dropped: list[int] = []

    def preprocess(self, nb: NotebookNode, resources: Any = None, km: Any = None):
        info = (resources or {}).get("nbgrader", {})
        assignment = info.get("assignment")
        self._active = limits_for(assignment, Limits(**self.limits), self.per_assignment)
        self._deadline = time.monotonic() + self._active.notebook_seconds
        self._reference_seconds = self._reference_times(assignment, info.get("notebook"))
        self._notebook_bytes = 0
        # Said in every log that grades (formgrader's Autograde button included).
        what = (
            f"Grading {info['student']}"
            if info.get("student")
            else f"Running the reference solution of {assignment}/{info.get('notebook')}"
        )
        self.log.info("%s: %s", what, protections().summary())
        return super().preprocess(nb, resources, km)

    def _reference_times(self, assignment: str | None, notebook: str | None) -> dict:
        if not assignment or not notebook:
            return {}
        from nbgrader.coursedir import CourseDirectory

        from dlcourse.grader import reference
        from dlcourse.grader.course import Course

        try:
            course = Course(Path(CourseDirectory(config=self.config).root).resolve())
            results = reference.load(course, assignment)
        except Exception:  # noqa: BLE001 - no reference yet: nbgrader's timeout applies
            return {}
        return (results or {}).get("seconds", {}).get(notebook, {})

    def create_kernel_manager(self):
        km = super().create_kernel_manager()
        km.limits = self._active
        return km

    def _cell_timeout(self, cell: NotebookNode) -> int | None:
        left = math.ceil(self._deadline - time.monotonic())  # a cell cut short ends past it
        limit = left if self.timeout is None or self.timeout < 0 else min(self.timeout, left)
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in self._reference_seconds:
            sized = max(
                self.timeout_floor, math.ceil(self.timeout_factor * self._reference_seconds[gid])
            )
            limit = min(limit, sized)
        return max(self.minimum_cell_timeout, limit)

    async def async_execute_cell(
        self,
        cell: NotebookNode,
        cell_index: int,
        execution_count: int | None = None,
        store_history: bool = True,
    ) -> NotebookNode:
        if cell.cell_type != "code" or not cell.source.strip():
            return await super().async_execute_cell(
                cell, cell_index, execution_count, store_history
            )
        if time.monotonic() >= self._deadline:
            limit = self._active.notebook_seconds
            cell.outputs = [
                error_output(
                    TIME_LIMIT_ERROR,
                    f"the notebook used up its {limit} s time limit; this cell was not run",
                )
            ]
            return cell
        self._cell_bytes, self._dropped = 0, []
        try:
            cell = await super().async_execute_cell(
                cell, cell_index, execution_count, store_history
            )
        except (DeadKernelError, CellTimeoutError):
            if self.locate_crash:
                self.crashed_cell = cell_index
            raise
        finally:
            self._say_what_was_dropped(cell)
        return cell

    def output(self, outs, msg, display_id, cell_index):
        """Every output as it arrives: errors are kept (cut to size), others only while the
        output, cell and notebook budgets allow; nothing over budget is ever stored."""
        content = msg.get("content") or {}
        if msg.get("msg_type") == "error":
            self._cut_error(content)
            return super().output(outs, msg, display_id, cell_index)
        size = _size(content)
        over = (
            size > self.max_output_kb * 1024
            or self._cell_bytes + size > self.max_cell_kb * 1024
            or self._notebook_bytes + size > self.max_notebook_kb * 1024
        )
        if over:
            self._dropped.append(size)
            return None
        self._cell_bytes += size
        self._notebook_bytes += size
        return super().output(outs, msg, display_id, cell_index)

    def _cut_error(self, content: dict) -> None:
        limit = self.max_error_chars
        content["evalue"] = str(content.get("evalue", ""))[:limit]
        traceback = [str(line)[:limit] for line in content.get("traceback", [])]
        content["traceback"] = traceback[:50] + (["..."] if len(traceback) > 50 else [])

    def _say_what_was_dropped(self, cell: NotebookNode) -> None:
        if not self._dropped:
            return
        megabytes = sum(self._dropped) / 2**20
        note = NotebookNode(
            output_type="stream",
            name="stdout",
            text=f"[{OUTPUT_REMOVED}: {len(self._dropped)} output(s), {megabytes:.1f} MB; "
            f"the limits are {self.max_output_kb} KB per output, {self.max_cell_kb} KB per "
            f"cell and {self.max_notebook_kb} KB per notebook]\n",
        )
        cell.outputs = [note, *cell.get("outputs", [])]
        self._dropped = []

    # NotebookClient binds its synchronous wrapper to its own coroutine: bind ours.
    execute_cell = run_sync(async_execute_cell)
