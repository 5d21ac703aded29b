"""Test-only helpers: build submissions, place them where nbgrader looks, hash trees."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import nbformat

from dlcourse.demo.pipeline import new_course
from dlcourse.grader.course import Course
from dlcourse.grader.runner import nbgrader, tool_env

REPO = Path(__file__).resolve().parent.parent

__all__ = [
    "REPO",
    "generated_course",
    "lab_env",
    "new_course",
    "plain_nbgrader",
    "submit",
    "tree_hashes",
    "written",
]


def tree_hashes(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under root (symlinks not followed)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def lab_env(root: Path, **extra: str) -> dict[str, str]:
    """The course tools' environment with the exchange and Jupyter's own folders under
    `root`: a test's lab and commands see nothing of this machine's Jupyter set-up."""
    jupyter = root / "jupyter"
    return tool_env(
        DLCOURSE_EXCHANGE=str(root / "exchange"),
        JUPYTER_CONFIG_DIR=str(jupyter / "config"),
        JUPYTER_DATA_DIR=str(jupyter / "data"),
        JUPYTER_PATH=str(jupyter / "path"),  # searched first, before the venv's kernel spec
        JUPYTER_RUNTIME_DIR=str(jupyter / "runtime"),
        IPYTHONDIR=str(jupyter / "ipython"),
        **extra,
    )


def plain_nbgrader(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """`nbgrader ARGS` as an instructor or student types it in `cwd`, never raising."""
    return subprocess.run(
        [sys.executable, "-m", "nbgrader", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def written(course: Course) -> dict[str, str]:
    """What a grading run may write and a broken one must not: gradebook, grades, feedback."""
    hashes = {f"feedback/{k}": v for k, v in tree_hashes(course.feedback()).items()}
    for path in (course.root / "gradebook.db", course.grades_csv):
        hashes[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def written_points(course: Course, worksheet: str) -> float:
    """The points of a worksheet's written answers: graded by hand, 0 until a grader gives
    them (what an all-correct submission lacks of max_score before that)."""
    from dlcourse.grader import cells

    return sum(
        sum(cells.written_cells(nb).values()) for nb in course.source_notebooks(worksheet).values()
    )


def generated_course(root: Path, worksheets: list[str], extra_config: str = "") -> Course:
    """A throwaway course with the repo's config (plus `extra_config`) and generated releases."""
    course = new_course(root, REPO, worksheets)
    if extra_config:
        with (course.root / "nbgrader_config.py").open("a") as config:
            config.write(extra_config)
    for worksheet in worksheets:
        nbgrader(course.root, "generate_assignment", worksheet, "--force")
    return course


def submit(
    course: Course, assignment: str, student: str, notebooks: dict[str, nbformat.NotebookNode]
) -> Path:
    """Place a submission where `nbgrader autograde` looks for it (as collect would)."""
    folder = course.submitted(student, assignment)
    folder.mkdir(parents=True, exist_ok=True)
    for name, nb in notebooks.items():
        nbformat.write(nb, folder / f"{name}.ipynb")
    return folder
