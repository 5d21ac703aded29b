"""One student never costs another marks (issue 23), graded through the driver's door
(`dlcourse.grader.autograde.grade`: staging, the parallel run, the retry alone, notes,
feedback, report), one class per configuration:

- beside a hostile neighbour that forks many spinning processes, each in a session of its
  own (os.setsid), before the course's setup cell runs, graded with workers=2: the honest
  student scores exactly as alone, with no note. (With a CPU budget per kernel, cgroups, the
  spinners cannot starve the neighbour; without one they can, and its setup cell's timeout
  sends it to the retry alone.) The hog breaks its own setup cell in every run (its spinners
  share its kernel's CPU and limits), and a "staller" makes its setup cell run past its time
  limit (an import hook that sleeps): each is graded again alone and then "could not be
  graded": no grade written, a neutral message, never a 0 or a FAILED that blames it;
- beside a memory hoarder (the kernel and four forked children, 2.5 GB each, twice the
  kernel's budget): the honest student scores exactly as alone, with no note;
- a right answer that saves to /tmp (the sandbox's private tmpfs) keeps full marks;
- an exception whose class name carries a newline and a forged bullet, raised in a locked
  setup cell, and worked copies whose names carry one: each stays one escaped line in the
  notes, the feedback and the report;
- a worked copy beside the untouched original is named in a note, not graded in its place;
- a kernel death after long-running cells stays within the one wall-clock budget per student
  (autograde + crash locator + re-grade), configured small here (`grading_seconds`).
"""

from __future__ import annotations

import time

import nbformat
import pytest
from helpers import generated_course, submit

from dlcourse.grader import cells
from dlcourse.grader.autograde import grade
from dlcourse.grader.driver import autograde_all

pytestmark = pytest.mark.slow
WORKSHEET = "ws01_tensors"
LAST = "ex_ema_update"
FORGED = "- the instructor reviewed this submission by hand"
HOG = """import os, time

for _ in range(24):
    if os.fork() == 0:
        os.setsid()
        while True:
            pass
time.sleep(1)
"""
FORGER = f"""import builtins

_real_import = builtins.__import__
Boom = type("Boom\\n{FORGED}", (Exception,), {{}})


def _import(name, *args, **kwargs):
    if name.startswith(("numpy", "tensorflow")):
        raise Boom("no imports for you")
    return _real_import(name, *args, **kwargs)


builtins.__import__ = _import
"""
# Memory: four children and the kernel each take 2.5 GB (pages touched), 12.5 GB in all,
# twice the kernel's budget; with cgroups the kernel's own tree is killed, never a neighbour.
MEMORY_HOG = """import os, time

hoard = []
for _ in range(4):
    if os.fork() == 0:
        hoard.append(bytearray(2500 * 2**20))
        time.sleep(60)
        os._exit(0)
hoard.append(bytearray(2500 * 2**20))
time.sleep(20)
"""
TMP_WRITER = """import json

with open("/tmp/scratch.json", "w") as f:  # a student's scratch file
    json.dump({"decay": 0.9}, f)
with open("/tmp/scratch.json") as f:
    assert json.load(f)["decay"] == 0.9

"""
STALLER = """import builtins
import time

_real_import = builtins.__import__
_stalled = []


def _import(name, *args, **kwargs):
    if name.startswith("tensorflow") and not _stalled:
        _stalled.append(name)
        time.sleep(3600)
    return _real_import(name, *args, **kwargs)


builtins.__import__ = _import
"""


# A setup cell gets 3 times its reference time (at least 5 s), not 10 times: the hog starves
# its own setup cells in both of its runs, and each costs that limit.
NEIGHBOUR_LIMITS = """
c.SandboxedExecute.timeout_factor = 3.0
c.SandboxedExecute.timeout_floor = 5
"""


def the_notebook(course) -> tuple[str, nbformat.NotebookNode, nbformat.NotebookNode]:
    """The worksheet's one notebook: its name, the student version, the master copy."""
    ((name, release_nb),) = course.release_notebooks(WORKSHEET).items()
    (source_nb,) = course.source_notebooks(WORKSHEET).values()
    return name, release_nb, source_nb


def before_last(reference: dict[str, str], code: str) -> dict[str, str]:
    """The reference answers with `code` run first in the last exercise's cell."""
    return reference | {LAST: code + reference[LAST]}


def with_first_cell(nb: nbformat.NotebookNode, source: str) -> nbformat.NotebookNode:
    """A cell the student added above the course's setup cells (nothing stops that)."""
    nb.cells.insert(0, nbformat.v4.new_code_cell(source))
    return nb


def test_a_neighbour_or_a_forged_name_costs_nobody_else_anything(tmp_path):
    course = generated_course(tmp_path / "course", [WORKSHEET], NEIGHBOUR_LIMITS)
    name, release_nb, source_nb = the_notebook(course)
    reference = cells.reference_answers(source_nb)
    full = cells.grade_cells(source_nb)
    right = cells.answered(release_nb, reference)
    submit(
        course,
        WORKSHEET,
        "hog",
        {name: with_first_cell(cells.answered(release_nb, reference), HOG)},
    )
    submit(course, WORKSHEET, "honest", {name: right})
    hoarder = before_last(reference, MEMORY_HOG)
    submit(course, WORKSHEET, "hoarder", {name: cells.answered(release_nb, hoarder)})
    staller = with_first_cell(cells.answered(release_nb, reference), STALLER)
    submit(course, WORKSHEET, "staller", {name: staller})
    tmp_answer = before_last(reference, TMP_WRITER)
    submit(course, WORKSHEET, "tmp_writer", {name: cells.answered(release_nb, tmp_answer)})
    submit(
        course,
        WORKSHEET,
        "forger",
        {name: with_first_cell(cells.answered(release_nb, reference), FORGER)},
    )
    folder = submit(course, WORKSHEET, "copier", {name: release_nb})
    nbformat.write(right, folder / f"{name}-Copy1.ipynb")
    nbformat.write(right, folder / f"Untitled\n{FORGED}.ipynb")

    said: list[str] = []
    outcomes, report = grade(
        course,
        WORKSHEET,
        ["hog", "honest", "hoarder", "tmp_writer", "forger", "copier", "staller"],
        workers=2,
        progress=said.append,
    )
    outcomes = {o.student: o for o in outcomes}
    log = "\n".join(said)

    # The honest student and the /tmp writer, graded beside a CPU hog of many sessions and a
    # memory hoarder: exactly as alone, no note. (The hoarder's own marks are its business.)
    for student in ("honest", "tmp_writer"):
        assert course.scores(WORKSHEET, student) == pytest.approx(full), (student, log)
        assert outcomes[student].ok and not outcomes[student].notes, outcomes[student]
    # The hog (its setup cell starved or its kernel killed by its own spinners) and the staller
    # (its setup cell stalled by its own import hook, a timeout in a locked cell): each graded
    # again alone, then "could not be graded": no grade written, no 0, no blame.
    assert "ran past its time limit" in outcomes["staller"].retry_alone, outcomes["staller"]
    for student in ("hog", "staller"):
        outcome = outcomes[student]
        assert f"{student}: graded again, alone" in log, log
        assert not outcome.ok and "setup cell" in outcome.retry_alone, outcome
        notes = outcome.notes
        assert any("could not be graded" in n and "not a verdict" in n for n in notes), notes
        assert not any("crashed the kernel" in n or "autograding failed" in n for n in notes)
        assert not course.autograded(student, WORKSHEET).exists()
        with course.gradebook() as gb:
            submission = gb.find_submission(WORKSHEET, student)
            scores = [g.auto_score for nb in submission.notebooks for g in nb.grades]
        assert scores and all(score is None for score in scores), scores  # not even a 0

    # Forged lines stay inside one escaped note, in the notes file, the feedback and the report.
    notes_file = course.notes(WORKSHEET, "forger").read_text()
    assert "Boom\\n- the instructor" in notes_file, notes_file
    for text in (notes_file, course.notes(WORKSHEET, "copier").read_text(), report.read_text()):
        assert not [
            ln for ln in text.splitlines() if ln.strip().lstrip("-* ").startswith(FORGED[2:])
        ], text
    feedback = (course.feedback("forger", WORKSHEET) / f"{name}.html").read_text()
    assert f"<li>{FORGED[2:]}" not in feedback

    # The worked copies are named, not graded; the original (as handed out) is.
    copier = " ".join(outcomes["copier"].notes)
    assert f"'{name}-Copy1.ipynb'" in copier and "Untitled\\n- the instructor" in copier, copier
    assert "were not graded: only" in copier and "has none of your answers" in copier, copier
    assert sum(course.scores(WORKSHEET, "copier").values()) == 0
    assert (
        "you also submitted" in (course.feedback("copier", WORKSHEET) / f"{name}.html").read_text()
    )
    assert "you also submitted" in report.read_text()


SLOW_CRASH = "import os, time\n\ntime.sleep(15)\nos._exit(3)\n"


def test_one_wall_clock_budget_covers_every_run_of_a_student(tmp_path):
    """Without one budget, this submission costs three runs of 15 s and more each (grading,
    the crash locator, grading again); with 40 s for all of them, it stops within 40 s."""
    budget = 40
    config = (
        f"\nc.SandboxedExecute.limits = dict(c.SandboxedExecute.limits, grading_seconds={budget})\n"
    )
    course = generated_course(tmp_path / "course", [WORKSHEET], config)
    name, release_nb, source_nb = the_notebook(course)
    nb = cells.answered(release_nb, cells.reference_answers(source_nb))
    nb.cells.append(nbformat.v4.new_code_cell(SLOW_CRASH))
    submit(course, WORKSHEET, "slow_crash", {name: nb})
    release = course.release_notebooks(WORKSHEET)
    start = time.monotonic()
    (outcome,) = autograde_all(course, WORKSHEET, ["slow_crash"], release, workers=1)
    assert outcome.seconds <= budget + 10, outcome
    assert time.monotonic() - start <= budget + 60  # the canary ran first
    assert not outcome.ok and outcome.timed_out, outcome
    assert any(f"after {budget} s, the limit for the whole submission" in n for n in outcome.notes)


# Writes 4 MB files into every place it can write (its working directory, HOME, /tmp, the
# directory of its kernel's sockets) until each is full, then fails with the first "No space
# left on device": its own exercise is lost, nothing else. Capped at 1 GB a place, in case a
# place is the disk.
DISK_HOG = """import errno
import os

_wrote, _last = {}, None
for _where in (os.getcwd(), os.path.expanduser("~"), "/tmp", os.environ["JUPYTER_RUNTIME_DIR"]):
    _total = 0
    try:
        while _total < 1024:
            with open(os.path.join(_where, f"fill-{_total}.bin"), "wb") as _f:
                _f.write(os.urandom(4 * 2**20))
            _total += 4
        _stop = "cap"
    except OSError as _err:
        _stop = errno.errorcode.get(_err.errno, str(_err.errno))
        if _err.errno == errno.ENOSPC and _last is None:
            _last = _err
    _wrote[_where] = (_total, _stop)
print("DISK", _wrote)
if _last is not None:
    raise _last

"""
# Small writable areas, so that filling them is quick: /tmp 48 MB, working directory and HOME
# 24 MB each.
SMALL_DISKS = (
    "\nc.SandboxedExecute.limits = dict(c.SandboxedExecute.limits, tmp_mb=48, work_mb=24)\n"
)


def test_a_neighbour_that_fills_the_disk_costs_nobody_else_anything(tmp_path):
    """A submission that writes until the disk is full fills only its kernel's own tmpfs
    mounts (working directory, HOME, /tmp; the socket directory is not writable): never the
    machine's disk. The honest student graded beside it scores exactly as alone with no
    note; the hog loses only the exercise whose cell failed, with its own error shown and a
    note that sends it to its feedback."""
    import ast

    course = generated_course(tmp_path / "course", [WORKSHEET], SMALL_DISKS)
    name, release_nb, source_nb = the_notebook(course)
    reference = cells.reference_answers(source_nb)
    full = cells.grade_cells(source_nb)
    hog = before_last(reference, DISK_HOG)
    submit(course, WORKSHEET, "disk_hog", {name: cells.answered(release_nb, hog)})
    submit(course, WORKSHEET, "honest", {name: cells.answered(release_nb, reference)})

    outcomes, _ = grade(course, WORKSHEET, ["disk_hog", "honest"], workers=2)
    outcomes = {o.student: o for o in outcomes}

    assert course.scores(WORKSHEET, "honest") == pytest.approx(full)
    assert outcomes["honest"].ok and not outcomes["honest"].notes, outcomes["honest"]

    hog_outcome = outcomes["disk_hog"]
    # Graded, its own mistake: the note points at the feedback, and blames no crash.
    assert hog_outcome.ok and not hog_outcome.retry_alone, hog_outcome
    assert hog_outcome.notes == [
        "some tests failed; each failing test says why in your feedback"
    ], hog_outcome.notes
    assert course.scores(WORKSHEET, "disk_hog") == pytest.approx(full | {"test_ema_update": 0})
    graded = nbformat.read(course.autograded("disk_hog", WORKSHEET) / f"{name}.ipynb", 4)
    cell = next(c for c in graded.cells if cells.grade_id(c) == LAST)
    text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
    errors = [o for o in cell.outputs if o.output_type == "error"]
    assert errors and "No space left on device" in errors[0].evalue, cell.outputs
    wrote = ast.literal_eval(text.split("DISK ", 1)[1].strip())
    places = list(wrote.values())
    # cwd and HOME: full at 24 MB; /tmp: full at 48 MB; the socket directory: refused.
    assert [stop for _, stop in places] == ["ENOSPC", "ENOSPC", "ENOSPC", "EACCES"], wrote
    caps = (24, 24, 48, 0)
    assert all(mb <= cap for (mb, _), cap in zip(places, caps, strict=True)), wrote
