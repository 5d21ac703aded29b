"""`nbgrader submit` as the student's server runs it (deploy/student's nbgrader_config.py).

nbgrader 0.9.6 copies a submission without what `CourseDirectory.ignore` names
(`.ipynb_checkpoints`, `__pycache__`, ...), but compares the notebooks with the release
before that filter: every JupyterLab checkpoint is logged as an `EXTRA` notebook and
`MISSING`/`EXTRA` warnings cry wolf. `SubmitWhatIsCopied` compares exactly what is submitted.
"""

from __future__ import annotations

import os

from nbgrader.exchange.default.submit import ExchangeSubmit
from nbgrader.utils import find_all_notebooks, ignore_patterns


def submitted_notebooks(
    folder: str, ignore: list[str], include: list[str], max_file_size: int
) -> list[str]:
    """Notebooks under `folder` that nbgrader's copy keeps, relative to it."""
    skip = ignore_patterns(exclude=ignore, include=include, max_file_size=max_file_size)
    found = []
    for root, dirs, files in os.walk(folder):
        dropped = set(skip(root, dirs + files))
        dirs[:] = [d for d in dirs if d not in dropped]
        found += [
            os.path.relpath(os.path.join(root, f), folder)
            for f in files
            if f.endswith(".ipynb") and f not in dropped
        ]
    return sorted(found)


class SubmitWhatIsCopied(ExchangeSubmit):
    def check_filename_diff(self) -> None:
        released = find_all_notebooks(self.release_path)
        coursedir = self.coursedir
        submitted = submitted_notebooks(
            self.src_path, coursedir.ignore, coursedir.include, coursedir.max_file_size
        )
        missing = [name for name in released if name not in submitted]
        extra = [name for name in submitted if name not in released]
        if not missing and not extra:
            return
        lines = [f"{n}: {'MISSING' if n in missing else 'FOUND'}" for n in released]
        lines += [f"{n}: EXTRA" for n in extra]
        message = f"notebooks of {self.coursedir.assignment_id} not as released:\n\t"
        message += "\n\t".join(lines)
        if missing and self.strict:
            self.fail(f"Assignment {self.coursedir.assignment_id} not submitted: {message}")
        self.log.warning(message)
