"""The Validate button's dialog says how many checks fail, not only which.

nbgrader 0.9.6's validate handler builds a `Validator` by name and its dialog lists each
failing cell ("The following cell failed: ..."), with no count: a student who fixes one
failure cannot tell at a glance how many are left. `use_counting_validator()`, called from
the students' and the course's `nbgrader_config.py` (the handler loads that config before it
validates), makes the handler build `CountingValidator`, whose first failure starts with one
line such as "2 of 7 graded checks fail; each is listed below." `nbgrader validate` on the
command line prints its own count and is left as it is.
"""

from __future__ import annotations

import html

import nbformat
from nbgrader import utils
from nbgrader.validator import Validator


def count_line(failed: int, graded: int) -> str:
    checks = "graded check" if graded == 1 else "graded checks"
    verb = "fails" if failed == 1 else "fail"
    listed = "it is listed below" if failed == 1 else "each is listed below"
    return f"{failed} of {graded} {checks} {verb}; {listed}."


def graded_cells(filename: str) -> int:
    nb = nbformat.read(filename, as_version=4)
    # test cells, and written answers (graded by hand; listed while left as handed out)
    return sum(1 for cell in nb.cells if utils.is_grade(cell))


class CountingValidator(Validator):
    def validate(self, filename: str) -> dict:
        results = super().validate(filename)
        failed = results.get("failed")
        if failed:
            graded = max(graded_cells(filename), len(failed))
            line = count_line(len(failed), graded)
            failed[0]["error"] = f"<b>{html.escape(line)}</b>\n\n{failed[0]['error']}"
        return results


def use_counting_validator() -> None:
    from nbgrader.server_extensions.validate_assignment import handlers

    handlers.Validator = CountingValidator
