"""The embedded demo class: simulated students, each a kind of submission a TA meets.

These are made up, not real student data. Each student's notebook is built from the
generated student version of a worksheet: the reference answers (from source/), the blank
release, or the worksheet's realistic mistake (`dlcourse.demo.mistakes`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import nbformat

from dlcourse.demo.mistakes import MISTAKES
from dlcourse.grader.cells import answered, grade_id, is_test, solution_ids, test_ids

LATE_TIMESTAMP = "2030-01-03 09:15:00.000000 UTC"  # two days after DUE_DATE
DUE_DATE = "2030-01-01 17:00:00 UTC"

Notebook = nbformat.NotebookNode


def _cell(nb: Notebook, gid: str):
    return next(c for c in nb.cells if grade_id(c) == gid)


class Context:
    """What a scenario needs: the student version, reference answers, wrong answers."""

    def __init__(self, worksheet: str, release: Notebook, reference: dict[str, str]):
        self.worksheet = worksheet
        self.release = release
        self.reference = reference
        self.solutions = solution_ids(release)

    def full(self) -> Notebook:
        return answered(self.release, self.reference)


def _partial(ctx: Context) -> Notebook:
    half = ctx.solutions[: (len(ctx.solutions) + 1) // 2]
    return answered(ctx.release, {k: ctx.reference[k] for k in half})


def _wrong(ctx: Context) -> Notebook:
    return answered(ctx.release, ctx.reference | MISTAKES[ctx.worksheet]["answers"])


def _import_error(ctx: Context) -> Notebook:
    first = ctx.solutions[0]
    broken = "from tensorflow import kerass  # typo: fails at import\n" + ctx.reference[first]
    return answered(ctx.release, ctx.reference | {first: broken})


def _infinite_loop(ctx: Context) -> Notebook:
    last = ctx.solutions[-1]
    return answered(ctx.release, ctx.reference | {last: "while True:\n    pass\n"})


def _kernel_crash(ctx: Context) -> Notebook:
    last = ctx.solutions[-1]
    return answered(ctx.release, ctx.reference | {last: "import os\n\nos._exit(1)\n"})


def _deleted_test(ctx: Context) -> Notebook:
    nb = ctx.full()
    first_test = test_ids(nb)[0]
    nb.cells = [c for c in nb.cells if grade_id(c) != first_test]
    return nb


def _duplicated_cell(ctx: Context) -> Notebook:
    """A solution cell copied (same cell id); the student answered in the copy below."""
    nb = ctx.full()
    cell = _cell(nb, ctx.solutions[0])
    stale = copy.deepcopy(_cell(ctx.release, ctx.solutions[0]))
    nb.cells.insert(nb.cells.index(cell), stale)
    return nb


def _edited_test(ctx: Context) -> Notebook:
    """First exercise left unanswered, and its visible test edited to pass anyway."""
    nb = answered(ctx.release, {k: v for k, v in ctx.reference.items() if k != ctx.solutions[0]})
    first = ctx.solutions[0]
    ids = [grade_id(c) for c in nb.cells]
    test = next(c for c in nb.cells[ids.index(first) :] if is_test(c))
    test.source = "assert True  # my answer is right, trust me\n"
    return nb


def _invalid_json(ctx: Context) -> str:
    text = nbformat.writes(ctx.full())
    return text[: len(text) // 2]  # the upload was cut off half-way


@dataclass(frozen=True)
class Scenario:
    what: str  # the situation it simulates
    build: Callable[[Context], Notebook | str]  # the notebook (or raw file text) submitted
    rename: str | None = None  # submitted under this file name ({name} = the notebook's)
    late: bool = False  # submitted past the due date


SCENARIOS: dict[str, Scenario] = {
    "ada": Scenario("full marks: the reference solution", Context.full),
    "ben": Scenario("blank: submitted without answering", lambda ctx: ctx.release),
    "cleo": Scenario("partially right: answered the first half", _partial),
    "dev": Scenario("a realistic wrong answer (dlcourse.demo.mistakes)", _wrong),
    "eve": Scenario("an exception at import time in the first answer", _import_error),
    "finn": Scenario("an infinite loop in the last answer", _infinite_loop),
    "gus": Scenario("a kernel crash (os._exit) in the last answer", _kernel_crash),
    "hana": Scenario("deleted the first test cell", _deleted_test),
    "ivan": Scenario("duplicated a solution cell (same cell id)", _duplicated_cell),
    "jo": Scenario("edited a visible test to pass without an answer", _edited_test),
    "kim": Scenario("renamed the notebook", Context.full, rename="{name}-Copy1.ipynb"),
    "leo": Scenario("a file that is not valid JSON", _invalid_json),
    "mia": Scenario("a late submission, past the due date", Context.full, late=True),
}
