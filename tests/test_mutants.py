"""Mutation testing of the hidden tests (dlcourse/mutants): a fixed sample of ws01_tensors.

The sample grades, in a real kernel with the real hidden tests and the grader's verdict code,
two exercises' mutants plus three hand-made answers: the reference answer itself (must not be
"killed"), a known-bad one (must be), and a right one whose helper is named like a name the
test cell assigns (`crop`): the tests run in their own scope, as in grading, so it survives.
The full run is `python -m dlcourse mutants all`.
"""

from __future__ import annotations

import nbformat
import pytest
from helpers import REPO

from dlcourse.grader import cells
from dlcourse.mutants import report
from dlcourse.mutants.operators import Mutant, mutants, solution_lines
from dlcourse.mutants.run import run_worksheet

WS = "ws01_tensors"
SAMPLE = {"ex_center_crop": 8, "ex_dense": 6}  # exercise -> mutants graded (fixed choice)
BAD_CROP = "    return images[:, :size, :size, :]"  # the top-left corner, not the centre
# Right, with a helper named `crop`: the test cell assigns `crop = center_crop(grid, 2)`, so in
# a namespace shared with the test, every later call to center_crop would fail.
HELPER_CROP = """def crop(images, top, left, size):
    return images[:, top : top + size, left : left + size, :]


def center_crop(images, size):
    return crop(images, (images.shape[1] - size) // 2, (images.shape[2] - size) // 2, size)"""


def _master(repo):
    return repo / "source" / WS / f"{WS}.ipynb"


def _sample(grade_id: str, source: str) -> list[Mutant]:
    made = mutants(grade_id, source)
    step = len(made) / SAMPLE[grade_id]
    chosen = [made[int(i * step)] for i in range(SAMPLE[grade_id])]
    answer, _ = solution_lines(source)
    chosen.append(Mutant(grade_id, answer, "reference", ("= the reference answer",)))
    if grade_id == "ex_center_crop":
        lines = answer.splitlines()
        bad = "\n".join([*lines[:-1], BAD_CROP])
        chosen.append(Mutant(grade_id, bad, "hand-made", (f"+ {BAD_CROP.strip()}",)))
        chosen.append(Mutant(grade_id, HELPER_CROP, "helper", ("= a helper named crop",)))
    return chosen


@pytest.mark.slow
def test_sample_of_ws01_is_graded_like_grading(repo, tmp_path):
    ws = run_worksheet(_master(repo), only=set(SAMPLE), make=_sample)
    assert [ex.grade_id for ex in ws.exercises] == list(SAMPLE)
    for ex in ws.exercises:
        assert ex.problem == ""  # the reference passes, before and after the mutants
        by_operator = {o.mutant.operator: o for o in ex.outcomes}
        assert not by_operator["reference"].killed, by_operator["reference"].reason
    crop = {o.mutant.operator: o for o in ws.exercises[0].outcomes}
    assert crop["hand-made"].killed
    assert not crop["helper"].killed, crop["helper"].reason
    assert "test_center_crop" in crop["hand-made"].reason
    outcomes = [o for ex in ws.exercises for o in ex.outcomes]
    assert len(outcomes) == 8 + 3 + 6 + 1
    # operator mutants of these two exercises are all killed (the full run says so too)
    survivors = [o.mutant.key for o in outcomes if not o.killed]
    reference = "= the reference answer"
    assert survivors == [reference, "= a helper named crop", reference]

    path = tmp_path / "mutants.md"
    path.write_text("# kept\n\n<!-- mutants:ws99 -->\nold\n<!-- /mutants:ws99 -->\n")
    report.write(path, {WS: report.section(ws, {}, command="test")})
    text = path.read_text()
    assert "<!-- mutants:ws99 -->\nold\n" in text  # another worksheet's section is kept
    assert "| ex_center_crop | 11 | 9 | 2 | 0 |" in text  # the reference and the helper survive
    assert "| ex_dense | 7 | 6 | 1 | 0 |" in text
    assert f"<!-- /mutants:{WS} -->" in text


def test_triage_entries_name_real_mutants_and_give_reasons(repo):
    """Every committed equivalent mutant is one the generator makes from today's master."""
    triage = report.load_triage(REPO / report.TRIAGE)
    assert triage
    made: dict[tuple[str, str], set[str]] = {}
    for ws, exercise, key in triage:
        if (ws, exercise) not in made:
            nb = nbformat.read(repo / "source" / ws / f"{ws}.ipynb", as_version=4)
            cell = next(c for c in nb.cells if cells.grade_id(c) == exercise)
            made[ws, exercise] = {m.key for m in mutants(exercise, cell.source)}
        assert key in made[ws, exercise], (ws, exercise, key)


def test_triage_entry_without_a_reason_is_refused(tmp_path):
    path = tmp_path / "equivalent.toml"
    path.write_text('[[equivalent]]\nworksheet = "ws01"\nexercise = "ex"\nmutant = "- a | + b"\n')
    with pytest.raises(ValueError, match="reason"):
        report.load_triage(path)


def test_mutants_stay_inside_the_solution_region():
    source = "def f(x, n=2):\n    ### BEGIN SOLUTION\n    return x[1:n] * 3\n    ### END SOLUTION\n"
    made = mutants("ex", source)
    assert made and all(m.diff[0] == "- return x[1:n] * 3" for m in made)
    keys = {m.key for m in made}
    assert "- return x[1:n] * 3 | + return x[1:n] / 3" in keys  # mutmut's operator swap
    assert "- return x[1:n] * 3 | + return x[1:n + 1] * 3" in keys  # our slice bound shift
    assert "- return x[1:n] * 3 | + return x[0:n] * 3" in keys  # our constant - 1
