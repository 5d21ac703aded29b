"""`make release`: regenerate release/ from source/ with nbgrader generate_assignment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dlcourse.data import REPO_ROOT


def assignments(course: Path) -> list[str]:
    return sorted(
        p.name for p in (course / "source").iterdir() if p.is_dir() and any(p.glob("*.ipynb"))
    )


def nbgrader(course: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run an nbgrader command for the course at `course` (its nbgrader_config.py applies)."""
    cmd = [sys.executable, "-m", "nbgrader", *args]
    return subprocess.run(cmd, cwd=course, capture_output=True, text=True, check=check)


def generate(course: Path = REPO_ROOT, names: list[str] | None = None) -> list[Path]:
    written = []
    for name in names or assignments(course):
        result = nbgrader(course, "generate_assignment", name, "--force", check=False)
        if result.returncode != 0:
            raise RuntimeError(f"nbgrader generate_assignment {name} failed:\n{result.stderr}")
        written.append(course / "release" / name)
    return written


def run() -> int:
    for path in generate():
        print(f"generated {path.relative_to(REPO_ROOT)}")
    return 0
