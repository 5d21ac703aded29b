"""Every door into grading behaves the same, and a broken grading environment writes nothing.

A small class (a reference answer and a wrong one) is graded once in a good environment, with
feedback and grades.csv. Then the environment is broken in three ways an instructor meets:

- the data sets are gone (the folder DLCOURSE_DATA names is emptied);
- the grading kernel cannot import the course's helper package (a `python3` kernel spec on
  JUPYTER_PATH, which jupyter_client searches first, starts a kernel where `import dlcourse`
  fails);
- the sandbox is unavailable (a `bwrap` first on PATH that fails).

and each door is tried in turn: the course's driver (`python -m dlcourse autograde`), plain
`nbgrader autograde`, and the formgrader's Autograde button (its HTTP API, as the page calls
it, on a running JupyterLab). Each must refuse with a message that says what broke, and the
gradebook, grades.csv and every feedback file must be byte-identical afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from helpers import REPO, generated_course, lab_env, plain_nbgrader, submit, written
from servers import get, running_lab

from dlcourse import data
from dlcourse.grader import cells
from dlcourse.grader.course import Course

WORKSHEET = "ws01_tensors"
# A partly right answer (the corpus's scales_by_the_batch_maximum): 4 of its test's 6 checks.
PARTIAL_ANSWER = (
    "def to_image_batch(images):\n"
    "    pixels = tf.cast(images, tf.float32)\n"
    "    return (pixels / tf.reduce_max(pixels))[..., tf.newaxis]\n"
)
PARTIAL_TEST, PARTIAL_SCORE = "test_to_image_batch", 1.33
ARTIFACTS = REPO / "artifacts" / "doors"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory) -> Iterator[tuple[Course, dict[str, str]]]:
    root = tmp_path_factory.mktemp("doors")
    found = data.course_data_dir()
    if found is None:
        pytest.skip("the course's data sets are not on this machine")
    # The data sets through a link, so a test can take them away and back.
    links = root / "data"
    links.symlink_to(Path(found).resolve(), target_is_directory=True)
    env = lab_env(root, DLCOURSE_DATA=str(links))
    course = generated_course(root / "course", [WORKSHEET])
    (name, release_nb), (source_nb,) = (
        next(iter(course.release_notebooks(WORKSHEET).items())),
        course.source_notebooks(WORKSHEET).values(),
    )
    answers = cells.reference_answers(source_nb)
    submit(course, WORKSHEET, "ada", {name: cells.answered(release_nb, answers)})
    # A worked copy beside the notebook: named in a note by every door, never graded.
    nbformat.write(release_nb, course.submitted("ada", WORKSHEET) / f"{name}-Copy1.ipynb")
    wrong = dict(answers)
    first = cells.solution_ids(source_nb)[0]
    wrong[first] = PARTIAL_ANSWER
    submit(course, WORKSHEET, "dev", {name: cells.answered(release_nb, wrong)})
    good = driver(course, env)
    assert good.returncode == 0, good.stdout[-3000:] + good.stderr[-3000:]
    assert course.scores(WORKSHEET, "dev")[PARTIAL_TEST] == PARTIAL_SCORE  # the driver's door
    (page,) = course.feedback("dev", WORKSHEET).glob("*.html")
    said = f"partial credit, {PARTIAL_SCORE:g} of 2 points (4 of 6 checks passed)"
    assert said in page.read_text()
    assert "you also submitted" in course.notes(WORKSHEET, "ada").read_text()
    assert course.grades_csv.is_file() and any(course.feedback().rglob("*.html"))
    yield course, env


def driver(course: Course, env: dict[str, str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "dlcourse", "autograde", WORKSHEET, "--course"]
    return subprocess.run(
        [*command, str(course.root)], env=env, capture_output=True, text=True, check=False
    )


def plain_autograde(course: Course, env: dict[str, str]) -> subprocess.CompletedProcess:
    return plain_nbgrader(course.root, env, "autograde", WORKSHEET, "--force")


@contextlib.contextmanager
def data_hidden(env: dict[str, str]) -> Iterator[str]:
    link = Path(env["DLCOURSE_DATA"])
    target = link.readlink()
    link.unlink()
    link.mkdir()
    try:
        yield "DatasetError"
    finally:
        link.rmdir()
        link.symlink_to(target, target_is_directory=True)


@contextlib.contextmanager
def helper_not_importable(env: dict[str, str]) -> Iterator[str]:
    spec = Path(env["JUPYTER_PATH"]) / "kernels" / "python3" / "kernel.json"
    spec.parent.mkdir(parents=True)
    launcher = (
        "import sys; sys.modules['dlcourse'] = None; "
        "from ipykernel import kernelapp; kernelapp.launch_new_instance()"
    )
    argv = [sys.executable, "-c", launcher, "-f", "{connection_file}"]
    spec.write_text(json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"}))
    try:
        yield "dlcourse"
    finally:
        shutil.rmtree(spec.parent)


@contextlib.contextmanager
def sandbox_unavailable(env: dict[str, str]) -> Iterator[str]:
    folder = Path(env["JUPYTER_DATA_DIR"]).parent / "broken-bin"
    folder.mkdir(parents=True, exist_ok=True)
    fake = folder / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    fake.chmod(0o755)
    try:
        yield "sandbox"
    finally:
        fake.unlink()


BREAKAGES = {
    "data sets hidden": data_hidden,
    "kernel cannot import the helper": helper_not_importable,
    "sandbox unavailable": sandbox_unavailable,
}


def with_broken_bin(env: dict[str, str]) -> dict[str, str]:
    """PATH with the folder that may hold a failing bwrap first (empty unless broken)."""
    folder = Path(env["JUPYTER_DATA_DIR"]).parent / "broken-bin"
    folder.mkdir(parents=True, exist_ok=True)
    return env | {"PATH": f"{folder}{os.pathsep}{env['PATH']}"}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_the_driver_and_plain_nbgrader_write_nothing_in_a_broken_environment(
    graded_class, breakage
):
    course, env = graded_class
    env = with_broken_bin(env)
    before = written(course)
    with BREAKAGES[breakage](env) as what:
        by_driver = driver(course, env)
        by_nbgrader = plain_autograde(course, env)
    said = by_driver.stdout + by_driver.stderr
    assert by_driver.returncode == 3, said[-3000:]
    assert "Nothing was written" in said and what in said, said[-3000:]
    said = by_nbgrader.stdout + by_nbgrader.stderr
    assert by_nbgrader.returncode != 0, said[-3000:]
    assert "Nothing was written" in said and what in said, said[-3000:]
    assert written(course) == before


def give_written_points(course: Course, student: str, points: float | None = None) -> float:
    """What a grader does in the formgrader: points for the student's written answer(s)
    (full marks unless `points`); returns the points given."""
    given = 0.0
    with course.gradebook() as gb:
        for grade in gb.find_submission(WORKSHEET, student).notebooks[0].grades:
            if grade.cell.cell_type == "markdown":
                grade.manual_score = grade.max_score if points is None else points
                given += grade.manual_score
        gb.db.commit()
    assert given > 0, "the worksheet has no written answer"
    return given


def test_the_formgrader_button_writes_nothing_in_a_broken_environment(graded_class, tmp_path):
    course, env = graded_class
    env = with_broken_bin(env)
    give_written_points(course, "ada")  # kept by the button's grading again, below
    before = written(course)
    path = f"/formgrader/api/submission/{WORKSHEET}/ada/autograde"
    with running_lab(course.root, course.root, env, tmp_path / "jupyter.log", ARTIFACTS) as (
        base,
        token,
    ):
        url = base + path
        for breakage, broken in BREAKAGES.items():
            with broken(env) as what:
                result = json.loads(get(url, token, timeout=600, method="POST"))
            said = result.get("error", "") + result.get("log", "")
            assert not result["success"], f"{breakage}: {said[-3000:]}"
            assert "Nothing was written" in said and what in said, f"{breakage}: {said[-3000:]}"
            assert written(course) == before, breakage
        # The same button in the repaired environment grades, through the same path.
        course.notes(WORKSHEET, "ada").unlink()
        result = json.loads(get(url, token, timeout=600, method="POST"))
        assert result["success"], result.get("error", "")[-3000:]
    assert (
        "you also submitted 'ws01_tensors-Copy1.ipynb'"
        in course.notes(WORKSHEET, "ada").read_text()
    )
    with course.gradebook() as gb:
        ada = gb.find_submission(WORKSHEET, "ada")
        assert ada.score == ada.max_score > 0  # the written answer's manual points included
    assert set(course.manual_scores(WORKSHEET, "ada").values()) == {2.0}


def test_plain_nbgrader_autograde_force_keeps_the_manual_points(graded_class):
    """Graded by hand, then graded again with `nbgrader autograde --force`: the grader's
    points stay (the driver and the formgrader's button: test_pipeline's regrade and the
    test above; the Dask cluster: test_dask's command line)."""
    course, env = graded_class
    given = give_written_points(course, "dev", 1.0)
    done = plain_nbgrader(course.root, env, "autograde", WORKSHEET, "--force", "--student", "dev")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert sum(course.manual_scores(WORKSHEET, "dev").values()) == given
    with course.gradebook() as gb:
        dev = gb.find_submission(WORKSHEET, "dev")
        assert 0 < dev.score < dev.max_score
    assert course.scores(WORKSHEET, "dev")[PARTIAL_TEST] == PARTIAL_SCORE  # plain nbgrader's door
