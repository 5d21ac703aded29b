"""What the grader knows about a submission that its files do not say, for staging.

- The master copy's own content: a submitted notebook that carries the master's solution or
  hidden-test markers (`### BEGIN SOLUTION`, `### BEGIN HIDDEN TESTS`, ...), or the text of
  one of its hidden-test blocks, came from the master copy (a link swapped in while collect
  copied, a file copied into `submitted/` by hand, a leaked master), not from the student's
  work: it is refused with a note, whatever door staged it (`dlcourse.grader.preflight`).
- What collect observed (`dlcourse.grader.exchange`): when the entry last changed, whether
  its timestamp was missing or backdated, files refused at collect (over the size limit,
  links, special files). Kept in the grader's area, `grading/collect/<assignment>.json`;
  its notes reach the student's feedback and the report through staging.
- The size limit for one submitted file: nbgrader's `CourseDirectory.max_file_size`
  (kilobytes of 1000 bytes), set once in the course's nbgrader_config.py, used by collect and
  by staging alike.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader.coursedir import CourseDirectory

from dlcourse.grader.course import Course

# nbgrader's delimiters (ClearSolutions, ClearHiddenTests); the release never has them.
MASTER_DELIMITERS = (
    "BEGIN SOLUTION",
    "END SOLUTION",
    "BEGIN HIDDEN TESTS",
    "END HIDDEN TESTS",
)
TIMESTAMP = "timestamp.txt"
MIN_BLOCK = 40  # characters: a hidden-test block shorter than this could be anyone's code
# nbgrader's default when no course says otherwise (kilobytes of 1000 bytes).
DEFAULT_MAX_BYTES = 1000 * CourseDirectory.class_traits()["max_file_size"].default()


def max_file_bytes(course: Course) -> int:
    """The course's limit for one submitted file, in bytes (collect and staging)."""
    return int(1000 * course.coursedir.max_file_size)


def over_limit(size: int | None, limit: int) -> str:
    """The reason a file is refused for its size (collect and staging say the same)."""
    megabytes = f"{size / 1e6:.1f} MB, " if size is not None else ""
    return f"is {megabytes}over the {limit / 1e6:.1f} MB limit for one submitted file"


def _is_delimiter(line: str) -> bool:
    text = line.strip().lstrip("#").strip()
    return text in MASTER_DELIMITERS


def _normalised(source: str) -> str:
    return "\n".join(line.strip() for line in source.splitlines() if line.strip())


def hidden_blocks(master: nbformat.NotebookNode) -> list[str]:
    """The text between each BEGIN/END HIDDEN TESTS pair of a master notebook, normalised."""
    blocks: list[str] = []
    for cell in master.cells:
        inside: list[str] | None = None
        for line in cell.source.splitlines():
            text = line.strip().lstrip("#").strip()
            if text == "BEGIN HIDDEN TESTS":
                inside = []
            elif text == "END HIDDEN TESTS" and inside is not None:
                if len(block := _normalised("\n".join(inside))) >= MIN_BLOCK:
                    blocks.append(block)
                inside = None
            elif inside is not None:
                inside.append(line)
    return blocks


def master_content_in(nb: nbformat.NotebookNode, master: nbformat.NotebookNode) -> str | None:
    """Why `nb` carries content only the master copy has, or None."""
    blocks = hidden_blocks(master)
    for index, cell in enumerate(nb.cells):
        source = cell.get("source", "")
        if not isinstance(source, str):
            continue
        if any(_is_delimiter(line) for line in source.splitlines()):
            return f"cell {index} has the master copy's solution or hidden-test markers"
        text = _normalised(source)
        if any(block in text for block in blocks):
            return f"cell {index} has the text of the master copy's hidden tests"
    return None


@dataclass
class Intake:
    """For `preflight.stage`: the master notebooks, collect's notes, the size limit."""

    master: dict[str, nbformat.NotebookNode] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    max_bytes: int = DEFAULT_MAX_BYTES

    @classmethod
    def of(cls, course: Course, assignment: str, student: str) -> Intake:
        return cls(
            master=course.source_notebooks(assignment),
            notes=collect_notes(course, assignment, student),
            max_bytes=max_file_bytes(course),
        )


# --- collect's record (written by dlcourse.grader.exchange) ----------------------------------


def record_path(course: Course, assignment: str) -> Path:
    return course.private / "collect" / f"{assignment}.json"


def load_record(course: Course, assignment: str) -> dict:
    """{"entries": {entry: {"first_seen", "ctime"}}, "students": {student: {...}}}"""
    try:
        record = json.loads(record_path(course, assignment).read_text())
    except (OSError, ValueError):
        record = {}
    record.setdefault("entries", {})
    record.setdefault("students", {})
    return record


def save_record(course: Course, assignment: str, record: dict) -> None:
    path = record_path(course, assignment)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".collect-")
    with os.fdopen(fd, "w") as fh:
        json.dump(record, fh, indent=1, sort_keys=True)
    os.replace(tmp, path)


def collect_notes(course: Course, assignment: str, student: str) -> list[str]:
    """Collect's notes about the submission now in `submitted/` (none if it was put there
    some other way since: its timestamp is not the one collect wrote)."""
    collected = load_record(course, assignment)["students"].get(student)
    if not collected:
        return []
    try:
        written = (course.submitted(student, assignment) / TIMESTAMP).read_text().strip()
    except OSError:
        return []
    if written != collected.get("timestamp"):
        return []
    return [str(note) for note in collected.get("notes", [])]
