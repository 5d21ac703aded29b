"""Repair what nbgrader alone would lose or mis-grade, before autograding, on a copy.

The collected submission in `submitted/` is never modified. Each student's files are copied
to a staging folder, checked and repaired there, and every repair is written down as a note
that ends up in the student's feedback and in the report.

What nbgrader 0.9 does by itself, measured on this course:
- a notebook that is not valid JSON: the student is recorded with 0 and no explanation;
- a renamed notebook: ignored, the expected notebook counts as missing;
- a duplicated cell (same cell id / grade_id): the whole `nbgrader autograde` run stops with
  "old version of the nbgrader metadata format" and later students are not graded;
- a kernel crash (`os._exit`) in one cell: the whole submission scores 0.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from dlcourse.grader.cells import grade_id, is_test


@dataclass
class Staged:
    student: str
    folder: Path
    notes: list[str] = field(default_factory=list)


def _read_json(path: Path) -> tuple[nbformat.NotebookNode | None, str | None]:
    try:
        text = path.read_text(encoding="utf-8")
        raw = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        return None, f"{type(err).__name__}: {err}"
    try:
        return nbformat.reads(json.dumps(raw), as_version=4), None
    except Exception as err:  # noqa: BLE001 - any nbformat failure means "not a notebook"
        return None, f"not a Jupyter notebook ({type(err).__name__}: {err})"


def _dedupe(nb: nbformat.NotebookNode) -> list[str]:
    """Keep the last copy of every duplicated nbgrader cell; make cell ids unique."""
    notes = []
    seen: set[str] = set()
    keep = []
    for cell in reversed(nb.cells):
        gid = grade_id(cell)
        if gid and gid in seen:
            notes.append(
                f"cell '{gid}' appeared more than once; the last copy was graded "
                f"and the earlier copy ignored"
            )
            continue
        if gid:
            seen.add(gid)
        keep.append(cell)
    nb.cells = keep[::-1]
    ids: set[str] = set()
    for i, cell in enumerate(nb.cells):
        if cell.get("id") in ids:
            cell["id"] = f"{cell['id']}-dup{i}"
        ids.add(cell.get("id"))
    return notes


def _restore_locked(nb: nbformat.NotebookNode, release: nbformat.NotebookNode) -> list[str]:
    """Report edited or deleted test cells (nbgrader restores them from the gradebook)."""
    notes = []
    present = {grade_id(c): c for c in nb.cells}
    for cell in release.cells:
        if not is_test(cell):
            continue
        gid = grade_id(cell)
        mine = present.get(gid)
        if mine is None:
            notes.append(f"test cell '{gid}' was deleted; it was restored and graded")
        elif mine.source.strip() != cell.source.strip():
            notes.append(f"test cell '{gid}' was edited; the original test was used")
    return notes


def stage(
    submitted: Path,
    staged: Path,
    student: str,
    release: dict[str, nbformat.NotebookNode],
) -> Staged:
    """Copy `submitted` to `staged`, repairing what would otherwise lose marks or work."""
    if staged.exists():
        shutil.rmtree(staged)
    shutil.copytree(submitted, staged)
    result = Staged(student, staged)
    present = {p.name: p for p in staged.glob("*.ipynb")}
    missing = [n for n in release if f"{n}.ipynb" not in present]
    unknown = [p for name, p in present.items() if Path(name).stem not in release]
    if len(missing) == 1 and len(unknown) == 1:
        target = staged / f"{missing[0]}.ipynb"
        result.notes.append(
            f"notebook was submitted as '{unknown[0].name}'; graded as '{target.name}'"
        )
        unknown[0].rename(target)
        missing = []
    for name in missing:
        result.notes.append(f"notebook '{name}.ipynb' is missing from the submission")

    for name, release_nb in release.items():
        path = staged / f"{name}.ipynb"
        if not path.exists():
            continue
        nb, error = _read_json(path)
        if nb is None:
            result.notes.append(
                f"'{name}.ipynb' could not be read ({error}); it was graded as unanswered. "
                f"Your original file is kept unchanged."
            )
            nbformat.write(release_nb, path)
            continue
        notes = _dedupe(nb) + _restore_locked(nb, release_nb)
        result.notes += notes
        nbformat.write(nb, path)
    return result
