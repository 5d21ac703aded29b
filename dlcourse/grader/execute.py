"""nbgrader's Execute step, made safe for untrusted submissions.

`SandboxedExecute` replaces nbgrader's `Execute` in `Autograde.autograde_preprocessors`
(see nbgrader_config.py). It

- starts the kernel through `dlcourse.sandbox.SandboxedKernelManager`, with the limits of the
  assignment being graded;
- drops any single output larger than `max_output_kb` (a generated 50 MB image, one endless
  line), leaving a line that says so;
- enforces a wall-clock limit for the whole notebook: once it is spent, the remaining cells
  are not run and carry an error saying why (nbgrader's per-cell timeout still applies);
- checks, before every test cell, that the student's code has not replaced the functions
  tests rely on (`numpy.testing.assert_*`, `numpy.allclose`, builtins such as `isinstance`
  or `abs`) or installed IPython input/AST transformers that rewrite later cells. The check
  compares a fingerprint taken before the first cell runs with one taken just before the
  test, evaluated as a kernel `user_expression` (which no input transformer sees). A test
  run after such a change scores 0 and says so.

The fingerprint stops the realistic cheat, a line like
`np.testing.assert_allclose = lambda *a, **k: None`. Code written to defeat this particular
check (for example by replacing `id` itself) is not caught at run time; its traces are plain
to see in the submission, and the report lists every integrity failure for a human to read.
"""

from __future__ import annotations

import ast
import json
import math
import time
from typing import Any

from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import run_sync
from nbformat import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Bool, Dict, Int

from dlcourse.grader.sandbox import Limits, SandboxedKernelManager, limits_for

INTEGRITY_ERROR = "GradingIntegrityError"
TIME_LIMIT_ERROR = "NotebookTimeLimitError"
OUTPUT_REMOVED = "output removed by the grader"

# Functions the worksheets' tests call, directly or through each other.
WATCHED: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "numpy.testing",
        (
            "assert_allclose",
            "assert_array_equal",
            "assert_array_almost_equal",
            "assert_almost_equal",
            "assert_equal",
            "assert_array_less",
            "assert_raises",
            "assert_",
        ),
    ),
    (
        "numpy.testing._private.utils",
        ("assert_allclose", "assert_array_equal", "assert_array_compare", "assert_equal"),
    ),
    ("numpy", ("allclose", "isclose", "array_equal", "testing", "asarray", "all", "abs")),
    ("math", ("isclose",)),
    (
        "builtins",
        (
            "abs", "all", "any", "isinstance", "issubclass", "len", "round", "float", "int",
            "bool", "sorted", "sum", "min", "max", "set", "list", "tuple", "dict", "type",
            "getattr", "hasattr", "id", "repr", "print", "AssertionError", "__import__",
        ),
    ),
)  # fmt: skip

# One expression, evaluated in the kernel: (module, name, id of the object, id of its code)
# for every watched function, then the number of IPython input and AST transformers.
FINGERPRINT = (
    "(lambda s, ip: repr(["
    "(m, n, id(getattr(s.modules[m], n, None)),"
    " id(getattr(getattr(s.modules[m], n, None), '__code__', None)))"
    f" for m, names in {WATCHED!r} if m in s.modules for n in names] + ["
    "('ipython', 'input_transformers_cleanup', len(ip.input_transformers_cleanup), 0),"
    "('ipython', 'input_transformers_post', len(ip.input_transformers_post), 0),"
    "('ipython', 'ast_transformers', len(ip.ast_transformers), 0)]))"
    "(__import__('sys'), get_ipython())"
)
PRELOAD = "import math, numpy, numpy.testing"


def changed(before: str, after: str | None) -> list[str]:
    """Which watched names differ between two fingerprints (all of them if unreadable)."""
    if after is None:
        return ["(the check itself could not run)"]
    old = {(m, n): rest for m, n, *rest in ast.literal_eval(before)}
    new = {(m, n): rest for m, n, *rest in ast.literal_eval(after)}
    return sorted(f"{m}.{n}" for (m, n), rest in new.items() if old.get((m, n), rest) != rest)


def error_output(ename: str, message: str) -> NotebookNode:
    return NotebookNode(
        output_type="error",
        ename=ename,
        evalue=message,
        traceback=[f"\x1b[0;31m{ename}\x1b[0m: {message}"],
    )


def is_test_cell(cell: NotebookNode) -> bool:
    meta = cell.metadata.get("nbgrader", {})
    return bool(meta.get("grade")) and not meta.get("solution")


class SandboxedExecute(Execute):
    limits = Dict(
        help="Default sandbox limits (keys of dlcourse.sandbox.Limits) for every assignment."
    ).tag(config=True)
    per_assignment = Dict(
        help="Limits for one assignment, e.g. {'ws05_cnn': {'memory_mb': 8192}}."
    ).tag(config=True)
    max_output_kb = Int(
        2048,
        help="Largest single output (a stream, an image, a value) kept in the graded notebook, "
        "in KB; nbgrader's LimitOutput only counts lines.",
    ).tag(config=True)
    minimum_cell_timeout = Int(
        1, help="Seconds a cell gets when the notebook's time is almost spent."
    ).tag(config=True)
    locate_crash = Bool(
        False,
        help="Remember the index of the cell that killed the kernel or cut it off "
        "(`crashed_cell`) before the error propagates; used by the crash locator.",
    )

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs["kernel_manager_class"] = SandboxedKernelManager
        super().__init__(*args, **kwargs)
        self.timeout_func = self._cell_timeout
        self._deadline = float("inf")
        self._baseline: str | None = None
        self._baseline_taken = False
        self._active = Limits()
        self.crashed_cell: int | None = None

    def preprocess(self, nb: NotebookNode, resources: Any = None, km: Any = None):
        assignment = (resources or {}).get("nbgrader", {}).get("assignment")
        self._active = limits_for(assignment, Limits(**self.limits), self.per_assignment)
        self._deadline = time.monotonic() + self._active.notebook_seconds
        self._baseline, self._baseline_taken = None, False
        return super().preprocess(nb, resources, km)

    def create_kernel_manager(self):
        km = super().create_kernel_manager()
        km.limits = self._active
        return km

    def _cell_timeout(self, cell: NotebookNode) -> int | None:
        left = math.ceil(self._deadline - time.monotonic())  # a cell cut short ends past it
        if self.timeout is None or self.timeout < 0:
            return max(self.minimum_cell_timeout, left)
        return max(self.minimum_cell_timeout, min(self.timeout, left))

    async def _fingerprint(self) -> str | None:
        msg_id = self.kc.execute(
            "", silent=True, store_history=False, user_expressions={"fp": FINGERPRINT}
        )
        try:
            reply = await self.async_wait_for_reply(msg_id)
        except Exception:  # noqa: BLE001 - an unresponsive kernel: the check cannot vouch
            return None
        result = (reply or {}).get("content", {}).get("user_expressions", {}).get("fp", {})
        if result.get("status") != "ok":
            return None
        return ast.literal_eval(result["data"]["text/plain"])

    async def _take_baseline(self) -> None:
        """Before any student code runs: the fingerprint every test cell is compared with."""
        self._baseline_taken = True
        msg_id = self.kc.execute(PRELOAD, silent=True, store_history=False)
        await self.async_wait_for_reply(msg_id)
        self._baseline = await self._fingerprint()

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
        if not self._baseline_taken:
            await self._take_baseline()
        tampered: list[str] = []
        if is_test_cell(cell) and self._baseline is not None:
            tampered = changed(self._baseline, await self._fingerprint())
        try:
            cell = await super().async_execute_cell(
                cell, cell_index, execution_count, store_history
            )
        except (DeadKernelError, CellTimeoutError):
            if self.locate_crash:
                self.crashed_cell = cell_index
            raise
        self._cap_outputs(cell)
        if tampered:
            cell.outputs.append(
                error_output(
                    INTEGRITY_ERROR,
                    "code run before this test replaced what the tests rely on "
                    f"({', '.join(tampered)}); the test cannot be trusted and scores 0",
                )
            )
        return cell

    def _cap_outputs(self, cell: NotebookNode) -> None:
        """Drop outputs over the size limit; say so first (LimitOutput keeps the first lines)."""
        limit = self.max_output_kb * 1024
        sizes = [len(json.dumps(output)) for output in cell.outputs]
        removed = [
            size
            for output, size in zip(cell.outputs, sizes, strict=True)
            if size > limit and output.output_type != "error"
        ]
        if not removed:
            return
        cell.outputs = [
            NotebookNode(
                output_type="stream",
                name="stdout",
                text=f"[{OUTPUT_REMOVED}: {len(removed)} output(s) of "
                f"{sum(removed) / 2**20:.1f} MB; the limit is {self.max_output_kb} KB each]\n",
            )
        ] + [
            output
            for output, size in zip(cell.outputs, sizes, strict=True)
            if size <= limit or output.output_type == "error"
        ]

    # NotebookClient binds its synchronous wrapper to its own coroutine: bind ours.
    execute_cell = run_sync(async_execute_cell)
