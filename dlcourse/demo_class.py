"""The embedded demo class: simulated students, each a kind of submission a TA meets.

These are fixtures, not real student data. Each student's notebook is built from the
generated student version of a worksheet: the reference answers (from source/), the blank
release, or a realistic wrong answer from tests/fixtures/wrong_answers/<worksheet>.py.
"""

from __future__ import annotations

import copy
import importlib.util
from collections.abc import Callable
from pathlib import Path

import nbformat

from dlcourse.grading import answered, nbgrader_meta

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "wrong_answers"
LATE_TIMESTAMP = "2030-01-03 09:15:00.000000 UTC"  # two days after DUE_DATE
DUE_DATE = "2030-01-01 17:00:00 UTC"

Notebook = nbformat.NotebookNode


def wrong_answers(worksheet: str) -> dict[str, dict]:
    path = FIXTURES / f"{worksheet}.py"
    spec = importlib.util.spec_from_file_location(f"wrong_{worksheet}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.STUDENTS


def solution_ids(nb: Notebook) -> list[str]:
    return [nbgrader_meta(c)["grade_id"] for c in nb.cells if nbgrader_meta(c).get("solution")]


def test_ids(nb: Notebook) -> list[str]:
    return [nbgrader_meta(c)["grade_id"] for c in nb.cells if nbgrader_meta(c).get("grade")]


def _cell(nb: Notebook, grade_id: str):
    return next(c for c in nb.cells if nbgrader_meta(c).get("grade_id") == grade_id)


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
    first = next(iter(wrong_answers(ctx.worksheet).values()))
    return answered(ctx.release, ctx.reference | first["answers"])


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
    nb.cells = [c for c in nb.cells if nbgrader_meta(c).get("grade_id") != first_test]
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
    ids = [nbgrader_meta(c).get("grade_id") for c in nb.cells]
    test = next(c for c in nb.cells[ids.index(first) :] if nbgrader_meta(c).get("grade"))
    test.source = "assert True  # my answer is right, trust me\n"
    return nb


def _invalid_json(ctx: Context) -> str:
    text = nbformat.writes(ctx.full())
    return text[: len(text) // 2]  # the upload was cut off half-way


# name -> (what it simulates, how the notebook is built, how it is submitted)
SCENARIOS: dict[str, tuple[str, Callable[[Context], Notebook | str], dict]] = {
    "ada": ("full marks: the reference solution", Context.full, {}),
    "ben": ("blank: submitted without answering", lambda ctx: ctx.release, {}),
    "cleo": ("partially right: answered the first half", _partial, {}),
    "dev": ("wrong answers (the first realistic mistake of the worksheet)", _wrong, {}),
    "eve": ("an exception at import time in the first answer", _import_error, {}),
    "finn": ("an infinite loop in the last answer", _infinite_loop, {}),
    "gus": ("a kernel crash (os._exit) in the last answer", _kernel_crash, {}),
    "hana": ("deleted the first test cell", _deleted_test, {}),
    "ivan": ("duplicated a solution cell (same cell id)", _duplicated_cell, {}),
    "jo": ("edited a visible test to pass without an answer", _edited_test, {}),
    "kim": ("renamed the notebook", Context.full, {"rename": "{name}-Copy1.ipynb"}),
    "leo": ("a file that is not valid JSON", _invalid_json, {}),
    "mia": ("a late submission, past the due date", Context.full, {"late": True}),
}
