"""Hidden tests and expected values never reach a student's feedback, whichever door made it.

The hidden part of a test cell runs in the student's kernel, so a student's code can see it.
One hostile student hands in answers that try to send it back through everything the kernel
produces while a test cell runs: IPython hooks printing each cell's source to stdout, stderr,
os.write(1/2) and display(), and writing it to files in the notebook's folder; a function
that raises an exception carrying its caller's source and local variables (the hidden inputs),
one whose exception class is named after them, and one that returns them as its value; and a
one-element check, where "largest difference" would be the expected value itself.

The class (that student and one with the reference answers) is graded by the driver; feedback
is made again by plain `nbgrader generate_feedback` and by formgrader's buttons (its HTTP API
on a running JupyterLab). Every feedback page, and every output of the autograded notebook
(formgrader's view: the same verdicts), must hold no hidden-test line of the master copy, no
expected value the reference recorded, nothing the hostile code marked; the instructor's
detail is in the grading log.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from helpers import REPO, generated_course, lab_env, plain_nbgrader, submit
from leak_answers import HOSTILE, LOSES, MARK
from servers import get, running_lab

from dlcourse import data
from dlcourse.grader import cells
from dlcourse.grader.course import Course
from dlcourse.grader.decide import split_hidden
from dlcourse.grader.verdict import verdict_outputs

WORKSHEET = "ws01_tensors"
ARTIFACTS = REPO / "artifacts" / "feedback_leaks"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> Iterator[tuple[Course, dict[str, str]]]:
    if data.course_data_dir() is None:
        pytest.skip("the course's data sets are not on this machine")
    root = tmp_path_factory.mktemp("leaks")
    env = lab_env(root)
    course = generated_course(root / "course", [WORKSHEET])
    (name, release_nb), (source_nb,) = (
        next(iter(course.release_notebooks(WORKSHEET).items())),
        course.source_notebooks(WORKSHEET).values(),
    )
    answers = cells.reference_answers(source_nb)
    assert set(HOSTILE) <= set(answers)
    submit(course, WORKSHEET, "ada", {name: cells.answered(release_nb, answers)})
    submit(course, WORKSHEET, "mallory", {name: cells.answered(release_nb, answers | HOSTILE)})
    command = [sys.executable, "-m", "dlcourse", "autograde", WORKSHEET, "--course"]
    done = subprocess.run(
        [*command, str(course.root)], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    yield course, env


def page_text(path: Path) -> str:
    """What a feedback page says: its text, without style sheets, scripts and markup."""
    page = path.read_text(encoding="utf-8")
    page = re.sub(r"(?is)<(style|script)\b.*?</\1\s*>", " ", page)
    return html.unescape(re.sub(r"(?s)<[^>]+>", "", page))


def hidden_lines(course: Course) -> list[str]:
    """Every hidden-test line of the master copy that the student's version does not hold."""
    (source_nb,) = course.source_notebooks(WORKSHEET).values()
    (release_nb,) = course.release_notebooks(WORKSHEET).values()
    public = {ln.strip() for c in release_nb.cells for ln in c.source.splitlines()}
    lines = [ln.strip() for c in source_nb.cells for ln in split_hidden(c.source)[1]]
    found = [ln for ln in lines if len(ln) >= 8 and ln not in public]
    assert len(found) > 40, found  # the worksheet's hidden tests, nearly all of them
    return found


def leaves(value) -> Iterator[float | str]:
    """The floats and strings of one recorded (encoded) value."""
    if isinstance(value, dict):
        inner = value.get("__ndarray__")
        yield from leaves(inner["data"] if isinstance(inner, dict) else list(value.values()))
    elif isinstance(value, list):
        for item in value:
            yield from leaves(item)
    elif isinstance(value, (float, str)):
        yield value


def expected_needles(course: Course, innocent: str) -> set[str]:
    """The expected values the reference recorded, as a message would print them, less what
    an honest student's feedback holds anyway (a visible check's numbers, a dtype's name)."""
    results = json.loads(course.expected(WORKSHEET).read_text())
    probes = [
        probe
        for nb in results["notebooks"].values()
        for test in nb.values()
        for probe in test["probes"].values()
    ]
    needles: set[str] = set()
    for value in (leaf for probe in probes for leaf in leaves(probe["value"])):
        if isinstance(value, str):
            needles.add(value)
        elif value not in (0.0, 1.0):
            needles |= {repr(value), f"{value:.4g}", f"{value:.6g}"}
    found = {n for n in needles if len(n) >= 3 and n not in innocent}
    assert "2.5" in found  # the one-element check's expected value
    return found


def assert_nothing_hidden(course: Course, text: str, where: str) -> None:
    assert MARK not in text, where
    assert "largest difference" not in text and "differ at" not in text, where
    for line in hidden_lines(course):
        assert line not in text, f"{where}: hidden line {line!r}"
    innocent = page_text(feedback_page(course, "ada"))
    text = without_partial_scores(course, text)
    for needle in expected_needles(course, innocent):
        assert needle not in text, f"{where}: expected value {needle!r}"


def without_partial_scores(course: Course, text: str) -> str:
    """`text` less the partial scores the grader gave mallory's test cells, and their total: a
    score such as 0.67 (a share of the points) is no expected value, though an expected 0.6
    is in it."""
    points = list(course.scores(WORKSHEET, "mallory").values())
    scores = {f"{round(v, 2):g}" for v in [*points, sum(points)] if v != int(v)}
    for score in scores:
        text = re.sub(rf"(?<![\d.]){re.escape(score)}(?!\d)", " ", text)
    return text


def feedback_page(course: Course, student: str) -> Path:
    return course.feedback(student, WORKSHEET) / f"{WORKSHEET}.html"


def check_feedback(course: Course, where: str) -> None:
    page = page_text(feedback_page(course, "mallory"))
    assert "hidden checks passed" in page and "TestFailed" in page, where
    assert "the test raised RuntimeError" in page, where  # center_crop, in the grader's words
    assert_nothing_hidden(course, page, where)
    for folder in (course.feedback("mallory", WORKSHEET), course.autograded("mallory", WORKSHEET)):
        assert not any(p.name == "leak.txt" for p in folder.rglob("*")), where


def test_the_driver_scores_and_keeps_feedback_and_formgrader_to_the_verdicts(graded):
    course, _ = graded
    full = cells.grade_cells(next(iter(course.source_notebooks(WORKSHEET).values())))
    assert course.scores(WORKSHEET, "ada") == full
    assert course.scores(WORKSHEET, "mallory") == {
        gid: LOSES.get(gid, points) for gid, points in full.items()
    }
    check_feedback(course, "driver")
    # What formgrader shows the instructor: each test cell's outputs are the verdict alone, as
    # in the feedback; the answer cells keep theirs. The detail is in the grading log.
    graded_nb = course.autograded("mallory", WORKSHEET) / f"{WORKSHEET}.ipynb"
    nb = nbformat.read(graded_nb, as_version=4)
    outputs = json.dumps([c.get("outputs", []) for c in nb.cells])
    assert_nothing_hidden(course, outputs, "autograded notebook")
    for cell in nb.cells:
        if cells.is_test(cell):  # the verdict's form alone: passed, failed or a partial score
            kinds = [o.output_type for o in cell.outputs]
            assert kinds and [o.output_type for o in verdict_outputs(cell)] == kinds
            assert all(o.get("ename") in (None, "TestFailed") for o in cell.outputs)
    log = course.log(WORKSHEET, "mallory").read_text()
    assert "largest difference 2.5" in log and MARK in log


def test_plain_nbgrader_generate_feedback(graded):
    course, env = graded
    feedback_page(course, "mallory").unlink()
    done = plain_nbgrader(course.root, env, "generate_feedback", WORKSHEET, "--force")
    assert done.returncode == 0, done.stderr[-3000:]
    check_feedback(course, "nbgrader generate_feedback")


def test_the_formgrader_buttons(graded, tmp_path):
    course, env = graded
    feedback_page(course, "mallory").unlink()
    with running_lab(course.root, course.root, env, tmp_path / "jupyter.log", ARTIFACTS) as (
        base,
        token,
    ):
        api = f"{base}/formgrader/api"
        autograded = get(f"{api}/submission/{WORKSHEET}/mallory/autograde", token, 600, "POST")
        assert json.loads(autograded)["success"], autograded[-3000:]
        made = get(f"{api}/assignment/{WORKSHEET}/mallory/generate_feedback", token, 600, "POST")
        assert json.loads(made)["success"], made[-3000:]
    check_feedback(course, "formgrader")
