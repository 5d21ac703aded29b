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

Only regular files are staged, read without following links: a symlink (to `source/`, to
`/etc/shadow`, to another student's notebook), a device, a FIFO, a socket or a folder is
refused with a note, and so is anything over the course's size limit for one file (the same
limit collect applies, `dlcourse.grader.intake`). Only the assignment's notebooks
and nbgrader's timestamp are taken from the submission; files handed out with the assignment
come from `release/` (a `numpy.py` next to a notebook never reaches the kernel). The nbgrader
metadata of every cell is reset from the release (a test cell flipped to `solution`, an extra
graded cell with an unknown id, `"nbgrader": null`), with a note. A notebook that carries the
master copy's own content (its solution/hidden-test markers or hidden tests) is refused with a
note and graded as unanswered, however it reached `submitted/`; collect's notes (lateness,
files refused at collect) are added to the student's.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from dlcourse.grader.cells import grade_id, is_answer, is_test
from dlcourse.grader.intake import Intake, master_content_in, over_limit
from dlcourse.grader.quoting import printable, quoted

MAX_FILES = 100  # entries looked at in one submission folder
TIMESTAMP = "timestamp.txt"
# Written by nbgrader itself into every submission; not the student's, not graded, but staged:
# `nbgrader release_feedback` names each student's feedback file after a hash of it.
NBGRADER_FILES = {"submission_secret.txt"}


@dataclass
class Staged:
    student: str
    folder: Path
    notes: list[str] = field(default_factory=list)


def _read_json(path: Path) -> tuple[nbformat.NotebookNode | None, str | None]:
    try:
        text = path.read_text(encoding="utf-8")
        raw = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        return None, f"{type(err).__name__}: {printable(err, 200)}"
    try:
        nb = nbformat.reads(json.dumps(raw), as_version=4)
        nbformat.validate(nb)
        return nb, None
    except Exception as err:  # noqa: BLE001 - any nbformat failure means "not a notebook"
        return None, f"not a Jupyter notebook ({type(err).__name__}: {printable(err, 200)})"


def _copy_regular(source: Path, target: Path, budget: int) -> str | None:
    """Copy one regular file without following links; the reason if refused."""
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as err:
        return f"could not be opened ({err.strerror})"
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        return "is not a regular file"
    with os.fdopen(fd, "rb") as fh:
        if info.st_size > budget:
            return over_limit(info.st_size, budget)
        data = fh.read(budget + 1)
    if len(data) > budget:
        return over_limit(None, budget)
    target.write_bytes(data)
    return None


def _take_files(submitted: Path, staged: Path, release_names: set[str], budget: int) -> list[str]:
    """Stage the submission's notebooks, timestamp and secret; say what was refused."""
    notes: list[str] = []
    if submitted.is_symlink() or not submitted.is_dir():
        return ["the submission folder is a link or not a folder; nothing in it was graded"]
    with os.scandir(submitted) as scan:
        entries = sorted(scan, key=lambda e: e.name)
    for entry in entries[:MAX_FILES]:
        name = printable(entry.name)
        if entry.name.startswith(".") and entry.is_dir(follow_symlinks=False):
            continue  # .ipynb_checkpoints and the like
        wanted = entry.name.endswith(".ipynb") or entry.name in {TIMESTAMP, *NBGRADER_FILES}
        if entry.is_symlink():
            notes.append(f"'{name}' is a link; links are not followed, it was not graded")
            continue
        if not wanted:
            if entry.name not in release_names | NBGRADER_FILES:
                notes.append(f"'{name}' is not part of the assignment and was ignored")
            continue
        reason = _copy_regular(Path(entry.path), staged / entry.name, budget)
        if reason:
            notes.append(f"'{name}' {reason}; it was not graded")
    if len(entries) > MAX_FILES:
        notes.append(f"the submission has {len(entries)} entries; only {MAX_FILES} were looked at")
    return notes


def _handouts(release_dir: Path, staged: Path) -> None:
    """Files handed out with the assignment, from the release (never the student's copy)."""
    if not release_dir.is_dir():
        return
    for path in release_dir.iterdir():
        if path.is_file() and not path.is_symlink() and path.suffix != ".ipynb":
            shutil.copyfile(path, staged / path.name)


def _repair_metadata(nb: nbformat.NotebookNode, release: nbformat.NotebookNode) -> list[str]:
    """Every cell's nbgrader metadata as the release has it; unknown graded cells demoted."""
    known = {grade_id(c): c.metadata["nbgrader"] for c in release.cells if grade_id(c)}
    notes = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", None)
        if "nbgrader" not in cell.metadata:
            continue
        gid = meta.get("grade_id") if isinstance(meta, dict) else None
        if gid in known:
            if meta != known[gid]:
                notes.append(
                    f"the grading settings of cell '{printable(str(gid))}' differed from the "
                    f"release; the release's were used"
                )
                cell.metadata["nbgrader"] = copy.deepcopy(known[gid])
            continue
        del cell.metadata["nbgrader"]
        if isinstance(meta, dict) and (meta.get("grade") or meta.get("solution")):
            notes.append(
                f"a cell marked for grading with an unknown id "
                f"('{printable(str(gid))}') was graded as an ordinary cell"
            )
    return notes


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


def _unanswered(path: Path, release_nb: nbformat.NotebookNode) -> bool:
    """No answer cell of the staged notebook differs from the release's (as handed out)."""
    nb, _ = _read_json(path)
    if nb is None:
        return True
    handed_out = {grade_id(c): c.source.strip() for c in release_nb.cells if is_answer(c)}
    answers = [c for c in nb.cells if is_answer(c)]
    return all(handed_out.get(grade_id(c)) == c.source.strip() for c in answers)


def _ungraded_notebooks(staged: Path, release: dict[str, nbformat.NotebookNode]) -> list[str]:
    """A note naming every notebook of the submission that is not one of the assignment's
    (a worked copy: `ws01_tensors-Copy1.ipynb`, `Untitled.ipynb`, a renamed copy), which is
    then removed from staging. Never graded in place of the expected notebook: with both
    submitted, which one holds the student's work is a guess (README)."""
    extra = sorted(p for p in staged.glob("*.ipynb") if p.stem not in release)
    if not extra:
        return []
    names = ", ".join(quoted(p.name) for p in extra[:5])
    if len(extra) > 5:
        names += f" and {len(extra) - 5} more"
    expected = ", ".join(f"'{name}.ipynb'" for name in release)
    which = "was" if len(extra) == 1 else "were"
    only = "is" if len(release) == 1 else "are"
    note = f"you also submitted {names}, which {which} not graded: only {expected} {only}"
    empty = [f"'{n}.ipynb'" for n, nb in release.items() if _unanswered(staged / f"{n}.ipynb", nb)]
    if empty:
        note += (
            f"; {', '.join(empty)} has none of your answers (it is as handed out), so if you "
            f"worked in another notebook, tell your instructor, who can grade it"
        )
    else:
        note += "; if your work is in another notebook, tell your instructor"
    for path in extra:
        path.unlink()
    return [note]


def stage(
    submitted: Path,
    staged: Path,
    student: str,
    release: dict[str, nbformat.NotebookNode],
    release_dir: Path | None = None,
    intake: Intake | None = None,
) -> Staged:
    """Copy `submitted` to `staged`, repairing what would otherwise lose marks or work.
    `intake` (`Intake.of(course, ...)`): the master notebooks, collect's notes about this
    submission and the course's size limit for one file."""
    intake = intake or Intake()
    if staged.exists():
        shutil.rmtree(staged)
    staged.mkdir(parents=True, mode=0o700)
    result = Staged(student, staged, list(intake.notes))
    names = (
        {p.name for p in release_dir.iterdir()} if release_dir and release_dir.is_dir() else set()
    )
    result.notes += _take_files(submitted, staged, names, intake.max_bytes)
    if release_dir is not None:
        _handouts(release_dir, staged)
    present = {p.name: p for p in staged.glob("*.ipynb")}
    missing = [n for n in release if f"{n}.ipynb" not in present]
    unknown = [p for name, p in present.items() if Path(name).stem not in release]
    if len(missing) == 1 and len(unknown) == 1:
        target = staged / f"{missing[0]}.ipynb"
        result.notes.append(
            f"notebook was submitted as '{printable(unknown[0].name)}'; graded as '{target.name}'"
        )
        unknown[0].rename(target)
        missing = []
    for name in missing:
        result.notes.append(
            f"notebook '{name}.ipynb' is missing from the submission; it was graded as unanswered"
        )
        nbformat.write(release[name], staged / f"{name}.ipynb")

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
        if name in intake.master and (leak := master_content_in(nb, intake.master[name])):
            result.notes.append(
                f"'{name}.ipynb' was refused: {leak}, content only the instructors' copy has "
                f"(not your own work); it was graded as unanswered. Your original file is kept "
                f"unchanged and an instructor will look at it."
            )
            nbformat.write(release_nb, path)
            continue
        notes = _repair_metadata(nb, release_nb) + _dedupe(nb) + _restore_locked(nb, release_nb)
        result.notes += notes
        nbformat.write(nb, path)
    result.notes += _ungraded_notebooks(staged, release)
    return result
