"""nbgrader's Execute step, made safe for untrusted submissions.

`SandboxedExecute` replaces nbgrader's `Execute` in `Autograde.autograde_preprocessors`
(see nbgrader_config.py). It

- starts the kernel through `dlcourse.grader.sandbox.SandboxedKernelManager`, with the limits
  of the assignment being graded;
- gives each cell that the reference solution ran (`dlcourse.grader.reference`) a timeout
  sized from the reference's own time for it (`timeout_factor` times, at least
  `timeout_floor` seconds, at most nbgrader's `timeout`), so a runaway cell costs seconds,
  not minutes;
- keeps of the kernel's messages only what the output budgets allow (`max_output_kb` per
  output, `max_cell_kb` per cell, `max_notebook_kb` per notebook; `dlcourse.grader.budget`),
  counted before anything is kept, whatever the message: streams, displays, results, errors
  (cut to `max_error_chars`, and past the budget kept only as a one-line error, a few per
  cell, since an error is what fails a test), display updates that rewrite earlier outputs,
  and nbgrader's copy of an error reply; cleared outputs give their bytes back. Comm messages
  (widgets) are kept nowhere: a graded notebook needs no widget state. A cell that lost
  outputs ends with a line that says so;
- reads a cell's messages to their end (the kernel's "idle") for up to the cell's own time
  limit after its reply, however many it sent: a flood still arriving after the reply costs
  that cell's outputs (the line above), not the notebook (nbgrader's Execute waits 4 s, then
  stops the notebook as if the kernel were cut off). Past that wait, or 4 s after a cell that
  never replied, `CellTimeoutError`: the kernel is cut off (or forged a reply), and the crash
  locator skips that cell;
- enforces a wall-clock limit for the whole notebook: once it is spent, the remaining cells
  are not run and carry an error saying why;
- has the kernel run each test cell in a scope of its own, with the data and modules as the
  setup cells defined them (`kernel_source`, `dlcourse.probe.run_test`): a student's helper
  named like a test's variable, or data rescaled while exploring, changes no test; the
  notebook keeps the cells' own source;
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

from dlcourse import probe
from dlcourse.grader import cells, crash, heldout
from dlcourse.grader.budget import OutputBudget, footprint, output_size
from dlcourse.grader.sandbox import Limits, SandboxedKernelManager, limits_for, protections
from dlcourse.grader.sanitize import is_locked

TIME_LIMIT_ERROR = "NotebookTimeLimitError"
OUTPUT_REMOVED = "output removed by the grader"
# The kernel messages whose content can reach the notebook; any other (comm messages and
# widget state included) is kept nowhere.
HANDLED_MESSAGES = frozenset(
    {
        "status", "execute_input", "clear_output", "stream", "display_data",
        "execute_result", "error", "update_display_data",
    }
)  # fmt: skip
ERRORS_PAST_BUDGET = 3  # one-line errors a cell keeps once its budget is spent
NAME_CHARS = 200  # an error's name, a display id
# Outputs one display id keeps up to date: each update rewrites all of them (nbclient), so a
# cell showing one id thousands of times would cost the grader time quadratic in their number.
# Past this, a new output with that id is kept as shown and no longer updated.
OUTPUTS_PER_DISPLAY_ID = 100


def error_output(ename: str, message: str) -> NotebookNode:
    return NotebookNode(
        output_type="error",
        ename=ename,
        evalue=message,
        traceback=[f"\x1b[0;31m{ename}\x1b[0m: {message}"],
    )


def kernel_source(cell: NotebookNode) -> str:
    """What the kernel runs for a cell: a course test cell through `dlcourse.probe.run_test`,
    a course setup cell with what it defines kept for the tests; any other cell as written."""
    if not cells.grade_id(cell):  # not the course's: nbgrader gives every cell of its an id
        return cell.source
    if cells.is_test(cell):
        return probe.test_cell_code(cell.source)
    if cells.is_setup(cell):
        return probe.setup_cell_code(cell.source)
    return cell.source


class _WithoutDebug(logging.LoggerAdapter):
    def isEnabledFor(self, level: int) -> bool:
        return level > logging.DEBUG and super().isEnabledFor(level)


class StagingKernelManager(SandboxedKernelManager):
    """A sandboxed kernel whose scratch working directory also gets what the grader stages
    there before the kernel starts (`stage_into`: the held-out images of an open-ended
    exercise, `dlcourse.grader.heldout`); never the course's folder."""

    stage_into: Any = None  # a callable taking the scratch working directory, or None

    async def _async_pre_start_kernel(self, **kw: Any):
        out = await super()._async_pre_start_kernel(**kw)
        if self.stage_into is not None:
            self.stage_into(self._scratch.workdir)
        return out


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

    @default("startup_timeout")
    def _startup_timeout_default(self) -> int:
        # The kernel imports TensorFlow before it answers (`dlcourse.probe.kernel_start`): on
        # a loaded machine that alone took 40 s; the notebook's wall clock still bounds it.
        return 180

    @default("log")
    def _log_default(self):
        log = super()._log_default()
        return log if self.trace_kernel_messages else _WithoutDebug(log, {})

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs["kernel_manager_class"] = StagingKernelManager
        super().__init__(*args, **kwargs)
        self.timeout_func = self._cell_timeout
        self._deadline = float("inf")
        self._active = Limits()
        self._reference_seconds: dict[str, float] = {}
        self.crashed_cell: int | None = None
        self._budget = self._new_budget()
        self._errors_past_budget: dict[int, int] = {}
        self._heldout_key: bytes | None = None
        self._student_notebook: str | None = None  # the notebook, while grading a student
        self._dropped: list[int] = []
        self._malformed = 0  # the running cell's messages that could not be read
        self._no_reply_wait = self.iopub_timeout  # for a cell's last messages, after no reply

    @default("store_widget_state")
    def _store_widget_state_default(self) -> bool:
        return False

    def _new_budget(self) -> OutputBudget:
        kb = 1024
        return OutputBudget(
            self.max_output_kb * kb, self.max_cell_kb * kb, self.max_notebook_kb * kb
        )

    def preprocess(self, nb: NotebookNode, resources: Any = None, km: Any = None):
        info = (resources or {}).get("nbgrader", {})
        assignment = info.get("assignment")
        self._active = limits_for(assignment, Limits(**self.limits), self.per_assignment)
        self._deadline = time.monotonic() + self._active.notebook_seconds
        self._reference_seconds = self._reference_times(assignment, info.get("notebook"))
        self._budget = self._new_budget()
        self._errors_past_budget = {}
        self._heldout_key = self._prepare_heldout(nb)
        self._student_notebook = info.get("notebook") if info.get("student") else None
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

    def _prepare_heldout(self, nb: NotebookNode) -> bytes | None:
        """The course's held-out key when this notebook asks for held-out images, else None."""
        if not heldout.needed(nb):
            return None
        from nbgrader.coursedir import CourseDirectory

        from dlcourse.grader.course import Course

        course = Course(Path(CourseDirectory(config=self.config).root).resolve())
        return heldout.prepare(course.private)

    def create_kernel_manager(self):
        km = super().create_kernel_manager()
        km.limits = self._active
        key = self._heldout_key
        km.stage_into = None if key is None else (lambda workdir: heldout.stage(workdir, key))
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
        self._dropped, self._malformed = [], 0
        # A replied cell's messages are read to their end for up to its own time limit.
        self.iopub_timeout = max(self._no_reply_wait, self._get_timeout(cell) or 0)
        source, cell.source = cell.source, kernel_source(cell)
        try:
            cell = await super().async_execute_cell(
                cell, cell_index, execution_count, store_history
            )
        except (DeadKernelError, CellTimeoutError) as err:
            if self.locate_crash:
                self.crashed_cell = cell_index
            elif isinstance(err, CellTimeoutError) and self._student_notebook is not None:
                # A setup cell whose output did not come within its limit (nbclient raises on
                # an IOPub timeout; a reply timeout is written into the cell, `decide`): the
                # machine was starved, the same problem of the grader's as a reply timeout.
                if cells.is_setup(cell):
                    setup = cells.grade_id(cell)
                    raise crash.SetupCellStopped.at(setup, self._student_notebook) from err
            raise
        finally:
            cell.source = source  # the notebook keeps the cell as written
            self._say_what_was_dropped(cell, cell_index)
        return cell

    async def _async_handle_timeout(self, timeout: int, cell: NotebookNode | None = None):
        """No reply within the cell's time limit: the kernel may be cut off from the grader,
        so only nbgrader's short wait for its last messages."""
        self.iopub_timeout = self._no_reply_wait
        return await super()._async_handle_timeout(timeout, cell)

    # --- every kernel message that could be kept passes through here ----------------------

    def process_message(self, msg: dict, cell: NotebookNode, cell_index: int):
        """Only the message types that make outputs, well formed; a forged or malformed one
        (a text execution count, a display id that is not a short string, missing fields) is
        dropped rather than stopping the notebook."""
        content = msg.get("content")
        if msg.get("msg_type") not in HANDLED_MESSAGES or not isinstance(content, dict):
            return None
        if not isinstance(content.get("execution_count", 0), (int, type(None))):
            content["execution_count"] = None
        transient = content.get("transient")
        if transient is not None:  # only its display id is used, and only a short string
            display_id = transient.get("display_id") if isinstance(transient, dict) else None
            valid = isinstance(display_id, str) and len(display_id) <= NAME_CHARS
            content["transient"] = {"display_id": display_id} if valid else {}
        try:
            return super().process_message(msg, cell, cell_index)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            if not self._malformed:  # said once per cell: a flood of them floods no log
                self.log.warning("ignored malformed %s message(s) from the kernel", msg["msg_type"])
            self._malformed += 1
            return None

    def output(self, outs, msg, display_id, cell_index):
        """A new output: kept only if it fits the budgets (an error: see `_admit_error`)."""
        if self.clear_before_next_output:  # a clear_output(wait=True) waiting for this
            self._clear(outs, cell_index)
            self.clear_before_next_output = False
        content = msg["content"]
        if msg["msg_type"] == "error":
            if not self._admit_error(content, cell_index):
                return None
        else:  # a stream, a display, a result
            size = output_size(content)
            if not self._fits({cell_index: size}, size):
                self._dropped.append(size)
                return None
        if display_id and self._shown_with(display_id) >= OUTPUTS_PER_DISPLAY_ID:
            display_id = None
        out = super().output(outs, msg, display_id, cell_index)
        if out is not None:
            self._budget.charge(cell_index, output_size(out))
        return out

    def _shown_with(self, display_id: str) -> int:
        return sum(map(len, self._display_id_map.get(display_id, {}).values()))

    def clear_output(self, outs, msg, cell_index):
        if (msg.get("content") or {}).get("wait"):
            self.clear_before_next_output = True
        else:
            self._clear(outs, cell_index)

    def _clear(self, outs: list, cell_index: int) -> None:
        self._budget.charge(cell_index, -sum(output_size(out) for out in outs))
        outs[:] = []
        self.clear_display_id_mapping(cell_index)

    def _update_display_id(self, display_id: str, msg: dict) -> None:
        """A display update rewrites every output shown with that id, in any cell: each of
        them is counted, in its own cell."""
        content = msg["content"]
        new = footprint([content.get("data", {}), content.get("metadata", {})])
        changes: dict[int, int] = {}
        # An update gives every output it rewrites the same objects: each is counted once.
        sizes: dict[tuple[int, int], int] = {}
        for index, positions in self._display_id_map.get(display_id, {}).items():
            outputs = self.nb.cells[index].outputs
            for position in positions:
                data, metadata = outputs[position].get("data"), outputs[position].get("metadata")
                key = (id(data), id(metadata))
                if key not in sizes:
                    sizes[key] = footprint([data, metadata])
                changes[index] = changes.get(index, 0) + new - sizes[key]
        if not changes:
            return
        if not self._fits(changes, new):
            self._dropped.append(new * self._shown_with(display_id))
            return
        super()._update_display_id(display_id, msg)
        for index, change in changes.items():
            self._budget.charge(index, change)

    def on_cell_executed(self, **kwargs: Any) -> None:
        """nbgrader adds the execute reply's error when no error output has its name (the
        kernel's display of it was suppressed or dropped): cut and counted like any error."""
        cell, reply = kwargs["cell"], kwargs.get("execute_reply") or {}
        content = reply.get("content") or {}
        if content.get("status") == "error":
            self._cut_error(content)
        before = len(cell.outputs)
        super().on_cell_executed(**kwargs)
        added = cell.outputs[before:]
        del cell.outputs[before:]
        for out in added:
            if self._admit_error(out, kwargs["cell_index"]):
                cell.outputs.append(out)
                self._budget.charge(kwargs["cell_index"], output_size(out))

    def _fits(self, changes: dict[int, int], largest: int) -> bool:
        course_cells = all(is_locked(self.nb.cells[index]) for index in changes)
        return self._budget.fits(changes, largest, course_cells)

    def _admit_error(self, error: dict, cell_index: int) -> bool:
        """Cut an error to size; past the budget, keep it as one line (an error is what fails
        a test, and names what went wrong), at most ERRORS_PAST_BUDGET per cell."""
        self._cut_error(error)
        size = output_size(error)
        if self._fits({cell_index: size}, size):
            return True
        self._dropped.append(size)
        spent = self._errors_past_budget.get(cell_index, 0)
        if spent >= ERRORS_PAST_BUDGET:
            return False
        self._errors_past_budget[cell_index] = spent + 1
        error["evalue"] = error["evalue"][:NAME_CHARS]
        error["traceback"] = [f"{error['ename']}: {error['evalue']}"]
        return True

    def _cut_error(self, content: dict) -> None:
        limit = self.max_error_chars
        content["ename"] = str(content.get("ename", ""))[:NAME_CHARS]
        content["evalue"] = str(content.get("evalue", ""))[:limit]
        traceback = content.get("traceback")
        traceback = traceback if isinstance(traceback, list) else [str(traceback or "")]
        lines = [str(line)[:limit] for line in traceback[:50]]
        content["traceback"] = lines + (["..."] if len(traceback) > 50 else [])

    def _say_what_was_dropped(self, cell: NotebookNode, cell_index: int) -> None:
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
        # First, where nbgrader's LimitOutput (which drops streams past its line count) keeps
        # it; display ids of this cell point at outputs by position: one further now.
        cell.outputs = [note, *cell.get("outputs", [])]
        for cell_map in self._display_id_map.values():
            if cell_index in cell_map:
                cell_map[cell_index] = [position + 1 for position in cell_map[cell_index]]
        self._dropped = []

    # NotebookClient binds its synchronous wrapper to its own coroutine: bind ours.
    execute_cell = run_sync(async_execute_cell)
