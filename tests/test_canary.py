"""A broken grading environment is the grader's fault, never the student's: the reference
solution is graded first, and if it does not get full marks nothing is graded."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import generated_course, submit

from dlcourse.grader import cells
from dlcourse.grader.runner import tool_env

WORKSHEET = "ws01_tensors"


@pytest.mark.slow
def test_a_broken_environment_grades_nobody_and_says_why(tmp_path):
    """The grading machine cannot see the data sets (a wrong DLCOURSE_DATA, a folder not
    mounted): the locked setup cell fails for everybody, the reference solution first."""
    course = generated_course(tmp_path / "course", [WORKSHEET])
    nowhere = tmp_path / "no-data-here"
    nowhere.mkdir()
    (name, release_nb), (source_nb,) = (
        next(iter(course.release_notebooks(WORKSHEET).items())),
        course.source_notebooks(WORKSHEET).values(),
    )
    reference = cells.reference_answers(source_nb)
    submit(course, WORKSHEET, "ada", {name: cells.answered(release_nb, reference)})
    command = [sys.executable, "-m", "dlcourse", "autograde", WORKSHEET]
    result = subprocess.run(
        [*command, "--course", str(course.root)],
        env=tool_env(DLCOURSE_DATA=str(nowhere)),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "Refusing to grade" in result.stdout and "reference solution" in result.stdout
    assert "setup_imports" in result.stdout, result.stdout  # names the cell that failed
    assert "DatasetError" in result.stdout
    assert not course.grades_csv.exists()
    assert not course.autograded().exists() or not any(course.autograded().iterdir())


def test_a_grading_child_has_the_drivers_environment_fingerprint():
    """The driver checks the reference under this fingerprint and each child (started with
    `tool_env()`) looks it up again: a difference would re-run the reference per student."""
    from dlcourse.grader import environment

    code = "from dlcourse.grader import environment; print(environment.fingerprint())"
    child = subprocess.run(
        [sys.executable, "-c", code], env=tool_env(), capture_output=True, text=True, check=True
    )
    assert child.stdout.strip() == environment.fingerprint()


def test_the_fingerprint_changes_with_what_can_break_grading(tmp_path, monkeypatch):
    from dlcourse import settings
    from dlcourse.grader import environment, sandbox

    before = environment.describe()
    monkeypatch.setenv(settings.DATA, str(tmp_path))  # an empty data folder first
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    spec = tmp_path / "jupyter" / "kernels" / "python3" / "kernel.json"
    spec.parent.mkdir(parents=True)
    spec.write_text('{"argv": ["python", "-c", "pass"], "display_name": "x", "language": "python"}')
    monkeypatch.setenv("MPLBACKEND", "svg")  # a setting the kernel inherits
    # Not inherited: another program's token, and thread counts (the grader's own).
    monkeypatch.setenv("TF_TOKEN_example", "not a kernel setting")
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.setattr(sandbox, "protections", lambda: "bubblewrap missing")
    after = environment.describe()
    changed = {part for part in before if before[part] != after[part]}
    assert changed == {"data", "kernel_spec", "kernel_environment", "sandbox"}, changed
    assert "TF_TOKEN_example" not in str(after)
    assert "OMP_NUM_THREADS" not in str(after["kernel_environment"])
