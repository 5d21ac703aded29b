"""`make release`: regenerate release/ from source/ with nbgrader generate_assignment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dlcourse.data import REPO_ROOT


def assignments(course: Path) -> list[str]:
    return sorted(
        p.name for p in (course / "source").iterdir() if p.is_dir() and any(p.glob("*.ipynb"))
    )


def nbgrader(
    course: Path, *args: str, check: bool = True, timeout: float | None = None
) -> subprocess.CompletedProcess:
    """Run an nbgrader command for the course at `course` (its nbgrader_config.py applies)."""
    cmd = [sys.executable, "-m", "nbgrader", *args]
    return subprocess.run(
        cmd,
        cwd=course,
        env=tool_env(),
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
    )


def tool_env(**extra: str) -> dict[str, str]:
    """Our environment with this interpreter's bin/ first on PATH: nbgrader runs `alembic`
    from PATH when it creates a gradebook, and kernels must use this environment."""
    bindir = str(Path(sys.executable).parent)
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([bindir, env.get("PATH", "")])
    env.update(extra)
    return env


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
