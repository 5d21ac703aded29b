"""End to end: a hostile student kernel cannot decide its own hidden test any more."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbgrader.utils import determine_grade

from dlcourse.grader.cells import answer_sources
from dlcourse.grader.verdict import apply, decide, expectation, expected_from

REPO = Path(__file__).resolve().parent.parent
POINTS = 2.0

RIGHT = "def double(x):\n    return x * 2\n"
WRONG = "def double(x):\n    return x * 3\n"
RIGHT_WARNS = (  # right, but a library warning goes to stderr, as Keras's do
    "import warnings\n\ndef double(x):\n    warnings.warn('input_shape is deprecated')\n"
    "    return x * 2\n"
)
HOOKS = """
import numpy as np

ip = get_ipython()
ip.set_custom_exc((AssertionError,), lambda *a, **k: None)
ip.events.register("pre_run_cell", lambda *a: print("pre_run_cell hook"))
ip.events.register("post_run_cell", lambda *a: ip.displayhook(16))
np.testing.assert_allclose = lambda *a, **k: None
"""
CLEARS = """
from IPython.display import clear_output

get_ipython().events.register("post_run_cell", lambda *a: clear_output())
"""
TEST = """
from dlcourse.probe import method, record, record_call

method(forbids=("math",), hint="plain Python arithmetic")
record("double(3)", double(3))
record_call("double(arange(3))", double, np.arange(3.0))
np.testing.assert_allclose(double(np.arange(3.0)), [0, 2, 4])
assert double(3) == 6
"""


def notebook(answer: str) -> nbformat.NotebookNode:
    setup = nbformat.v4.new_code_cell("import numpy as np")
    solution = nbformat.v4.new_code_cell(answer)
    solution.metadata["nbgrader"] = {"solution": True, "grade": False, "grade_id": "answer"}
    test = nbformat.v4.new_code_cell(TEST)
    test.metadata["nbgrader"] = {
        "grade": True,
        "solution": False,
        "locked": True,
        "points": POINTS,
        "grade_id": "test_double",
    }
    return nbformat.v4.new_notebook(cells=[setup, solution, test])


def executed(answer: str) -> nbformat.NotebookNode:
    nb = notebook(answer)
    NotebookClient(
        nb,
        timeout=60,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(REPO)}},
    ).execute()
    return nb


def graded(nb: nbformat.NotebookNode, expected_data: dict) -> float:
    cell = nb.cells[-1]
    expected, rule = expectation(expected_data, "test_double")
    verdict = decide(cell, expected, rule, answer_sources(nb, "test_double"))
    apply(cell, verdict)
    return determine_grade(cell)[0]


def nbgrader_alone(cell) -> float | str:
    try:
        return determine_grade(cell)[0]
    except ValueError as exc:
        return f"crash: {exc}"


@pytest.fixture(scope="module")
def reference() -> dict:
    return expected_from(executed(RIGHT))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("answer", "points"),
    [
        (RIGHT, POINTS),
        (WRONG, 0.0),
        (RIGHT_WARNS + HOOKS, POINTS),
        (WRONG + HOOKS, 0.0),
        (WRONG + CLEARS, 0.0),
    ],
    ids=["right", "wrong", "right-hostile", "wrong-hostile", "wrong-clears-its-outputs"],
)
def test_hostile_kernel_cannot_decide_its_grade(reference, answer, points):
    assert set(reference["test_double"]["probes"]) == {"double(3)", "double(arange(3))"}
    nb = executed(answer)
    test = nb.cells[-1]
    if answer in (WRONG + HOOKS, WRONG + CLEARS):  # the attack works against nbgrader alone
        assert nbgrader_alone(test) != 0
        assert not any(o.output_type == "error" for o in test.outputs)
    if answer == RIGHT_WARNS + HOOKS:  # a right answer that nbgrader alone would zero
        assert nbgrader_alone(test) == 0
        assert any(o.get("name") == "stderr" for o in test.outputs)
    assert graded(nb, reference) == points
    kinds = [o.output_type for o in test.outputs]
    assert "execute_result" not in kinds
    assert not any(o.get("name") == "stderr" for o in test.outputs)
    if points:
        assert test.outputs[-1].text == "hidden checks passed (3)\n"
    else:
        assert kinds[0] == "error" and "double(3)" in test.outputs[0].evalue
        assert test.outputs[0].ename == "TestFailed"


@pytest.mark.slow
def test_method_rule_is_taken_from_the_reference(reference):
    nb = executed("import math\n\ndef double(x):\n    return x * 2\n")
    assert graded(nb, reference) == 0
    assert "must not use math" in nb.cells[-1].outputs[0].evalue
