"""`make demo`: check the set-up, then run the course's main job headless."""

from __future__ import annotations

import time

from dlcourse import doctor
from dlcourse.data import REPO_ROOT
from dlcourse.notebooks import execute, walkthroughs, write

WORK = REPO_ROOT / "work" / "demo"


def run() -> int:
    print("== Checking installation, devices and data ==")
    if doctor.run():
        print("Fix the problems above, then run `make demo` again.")
        return 1
    notebooks = walkthroughs(REPO_ROOT)
    if not notebooks:
        print("No walkthrough notebooks yet.")
        return 1
    first = notebooks[0]
    print(f"\n== Executing {first.relative_to(REPO_ROOT)} headless (quick mode) ==")
    WORK.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    nb = execute(first)
    out = WORK / first.name
    write(nb, out)
    print(f"done in {time.perf_counter() - start:.1f} s; executed copy: {out}")
    return 0
