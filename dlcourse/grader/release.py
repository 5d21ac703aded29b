"""`make release`: regenerate release/ from source/ with nbgrader generate_assignment."""

from __future__ import annotations

from pathlib import Path

from dlcourse.grader.course import Course
from dlcourse.grader.runner import nbgrader


def generate(course: Course, names: list[str] | None = None) -> list[Path]:
    written = []
    for name in names or course.assignments():
        nbgrader(course.root, "generate_assignment", name, "--force")
        written.append(course.release(name))
    return written


def command() -> int:
    course = Course.at()
    for path in generate(course):
        print(f"generated {path.relative_to(course.root)}")
    return 0
