"""`make outputs`: re-execute notebooks in quick mode (as CI does), write them canonically."""

from __future__ import annotations

import time
from pathlib import Path

from dlcourse.grader.course import Course
from dlcourse.notebooks import execute, walkthroughs, write


def run(names: list[str] | None = None) -> int:
    paths = [Path(n) for n in names] if names else walkthroughs(Course.at().root)
    for path in paths:
        start = time.perf_counter()
        nb = execute(path)
        write(nb, path)
        print(f"{path}: executed in {time.perf_counter() - start:.1f} s")
    return 0
