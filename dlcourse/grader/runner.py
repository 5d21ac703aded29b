"""The one way the grader runs an nbgrader command: a subprocess in the course root, with this
interpreter's environment, returning a structured result. Success is the exit status, never
a substring of the log (student code can print anything)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from dlcourse import settings


@dataclass(frozen=True)
class Result:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def check(self) -> Result:
        if not self.ok:
            raise NbgraderFailed(self)
        return self


class NbgraderFailed(RuntimeError):
    def __init__(self, result: Result):
        super().__init__(
            f"nbgrader {' '.join(result.args)} failed (exit {result.returncode}):\n"
            f"{result.stderr[-3000:]}"
        )
        self.result = result


def tool_env(**extra: str) -> dict[str, str]:
    """Our environment with this interpreter's bin/ first on PATH (nbgrader runs `alembic`
    from PATH when it creates a gradebook; kernels must use this environment), and the data
    sets found from here named explicitly (the command may run in another folder)."""
    from dlcourse import data

    bindir = str(Path(sys.executable).parent)
    env = dict(os.environ) | settings.QUIET_TF
    env["PATH"] = os.pathsep.join([bindir, env.get("PATH", "")])
    if settings.DATA not in env and (folder := data.course_data_dir()) is not None:
        env[settings.DATA] = str(folder)
    env.update(extra)
    return env


def nbgrader(
    course: Path,
    *args: str,
    check: bool = True,
    timeout: float | None = None,
    cwd: Path | None = None,
) -> Result:
    """Run `nbgrader ARGS` for the course at `course` (its nbgrader_config.py applies), through
    `dlcourse.grader.nbgrader_cli`: nbgrader's own main, started without an unused import."""
    completed = subprocess.run(
        [sys.executable, "-m", "dlcourse.grader.nbgrader_cli", *args],
        cwd=cwd or course,
        env=tool_env(),
        capture_output=True,
        text=True,
        errors="replace",
        check=False,
        timeout=timeout,
    )
    result = Result(tuple(args), completed.returncode, completed.stdout, completed.stderr)
    return result.check() if check else result
